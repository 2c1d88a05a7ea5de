// Hyperparameters of a decoder-only transformer, read from config.json or GGUF metadata.
// Architectures fill what they use; defaults describe a plain Llama block.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ballast::model {

enum class RopeScaling { kNone, kLinear, kLlama3, kLongrope };
enum class RopeLayout { kNeox, kInterleaved };  // HF rotate-half vs GGML llama (permuted q/k)
enum class Activation { kSilu, kGeluTanh, kGeluErf, kRelu };

struct RopeParams {
  double theta = 10000.0;
  RopeScaling scaling = RopeScaling::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  double original_max_pos = 8192;
  // LongRoPE: per rotary pair, the frequency divisors for sequences within original_max_pos
  // (short) and past it (long), and the cos/sin multiplier (attention factor).
  std::vector<double> short_factor, long_factor;
  double attention_factor = 1.0;
  double partial_rotary = 1.0;  // fraction of head_dim that rotates (partial_rotary_factor)
};

struct GenerationDefaults {
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int64_t> top_k;
  std::optional<bool> do_sample;
};

struct ModelConfig {
  std::string arch;          // registry key of the implementation ("llama", "gemma3")
  std::string source_arch;   // as named by the file ("LlamaForCausalLM", "llama", ...)
  int64_t vocab_size = 0;    // config's vocab_size (rows are taken from the tensors)
  int64_t hidden = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn = 0;
  int64_t max_pos = 4096;
  double rms_eps = 1e-6;
  RopeParams rope;           // global (full-attention) layers
  RopeParams rope_local;     // sliding-window layers (Gemma 3)
  RopeLayout rope_layout = RopeLayout::kNeox;
  Activation act = Activation::kSilu;
  bool tie_embeddings = false;
  bool attn_bias = false;    // q/k/v biases (Qwen2)
  bool qk_norm = false;      // per-head RMSNorm on q and k (Qwen3, Gemma 3)
  double norm_offset = 0.0;  // RMSNorm uses (offset + w): Gemma in HF form stores w, uses 1 + w
  double embed_scale = 1.0;  // Gemma multiplies embeddings by sqrt(hidden)
  double attn_scale = 0.0;   // 0: 1/sqrt(head_dim)
  double final_logit_softcap = 0.0, attn_logit_softcap = 0.0;
  int64_t sliding_window = 0;
  std::vector<bool> layer_sliding;  // per layer; empty = none sliding
  // Encoder-decoders (T5): n_layers counts the encoder's layers.
  bool encoder_decoder = false;
  int64_t n_decoder_layers = 0;
  int64_t rel_buckets = 0, rel_max_distance = 0;  // relative-position buckets (T5)
  bool gated_ffn = true;                          // T5: gated-gelu (v1.1, flan) vs plain ReLU (original)
  bool scale_decoder_output = false;              // T5: final hidden x d_model^-0.5 before the head (original)
  std::optional<int64_t> decoder_start_id;
  bool chat_turns_by_eos = false;  // no template: chat turns are joined by eos (GPT-2 / DialoGPT)
  bool fp16_overflow_prone = false;  // activations overflow float16 (Gemma): the audit warns on f16 weights
  // Special ids as the model config declares them (the audit compares sources).
  std::vector<int64_t> eos_ids, gen_eos_ids;
  std::optional<int64_t> bos_id, pad_id, gen_bos_id, gen_pad_id;
  GenerationDefaults gen;
  std::string dtype_name;    // torch_dtype / GGUF file type, informational
};

}  // namespace ballast::model
