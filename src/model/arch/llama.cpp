// Llama family: Llama 2/3 (llama3 RoPE scaling), SmolLM2, Mistral, Qwen2 (q/k/v bias),
// Qwen3 (per-head q/k RMSNorm). Pre-norm blocks, SwiGLU MLP, GQA attention.
#include <cmath>

#include "io/gguf.h"
#include "model/hf_config.h"
#include "model/layers/layers.h"
#include "model/registry.h"

namespace ballast::model {
namespace {


struct LlamaLayer {
  const Weight *q, *k, *v, *o, *gate, *up, *down;
  std::vector<float> ln1, ln2, q_norm, k_norm, bq, bk, bv;
};

class LlamaModel : public DecoderModel {
 public:
  using DecoderModel::DecoderModel;

  Status init() override {
    const auto& c = cfg_;
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    BALLAST_RETURN_IF_ERROR(bind_embeddings());
    BALLAST_ASSIGN_OR_RETURN(final_norm_, ws_->get_f32("model.norm.weight", H));
    layers_.resize(c.n_layers);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      auto& ly = layers_[l];
      BALLAST_ASSIGN_OR_RETURN(ly.q, ws_->get(layer_name(l, "self_attn.q_proj.weight"), {qd, H}));
      BALLAST_ASSIGN_OR_RETURN(ly.k, ws_->get(layer_name(l, "self_attn.k_proj.weight"), {kd, H}));
      BALLAST_ASSIGN_OR_RETURN(ly.v, ws_->get(layer_name(l, "self_attn.v_proj.weight"), {kd, H}));
      BALLAST_ASSIGN_OR_RETURN(ly.o, ws_->get(layer_name(l, "self_attn.o_proj.weight"), {H, qd}));
      BALLAST_ASSIGN_OR_RETURN(ly.gate, ws_->get(layer_name(l, "mlp.gate_proj.weight"), {c.ffn, H}));
      BALLAST_ASSIGN_OR_RETURN(ly.up, ws_->get(layer_name(l, "mlp.up_proj.weight"), {c.ffn, H}));
      BALLAST_ASSIGN_OR_RETURN(ly.down, ws_->get(layer_name(l, "mlp.down_proj.weight"), {H, c.ffn}));
      BALLAST_ASSIGN_OR_RETURN(ly.ln1, ws_->get_f32(layer_name(l, "input_layernorm.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln2, ws_->get_f32(layer_name(l, "post_attention_layernorm.weight"), H));
      if (c.qk_norm) {
        BALLAST_ASSIGN_OR_RETURN(ly.q_norm, ws_->get_f32(layer_name(l, "self_attn.q_norm.weight"), c.head_dim));
        BALLAST_ASSIGN_OR_RETURN(ly.k_norm, ws_->get_f32(layer_name(l, "self_attn.k_norm.weight"), c.head_dim));
      }
      if (c.attn_bias) {
        BALLAST_ASSIGN_OR_RETURN(ly.bq, ws_->get_f32(layer_name(l, "self_attn.q_proj.bias"), qd));
        BALLAST_ASSIGN_OR_RETURN(ly.bk, ws_->get_f32(layer_name(l, "self_attn.k_proj.bias"), kd));
        BALLAST_ASSIGN_OR_RETURN(ly.bv, ws_->get_f32(layer_name(l, "self_attn.v_proj.bias"), kd));
      }
    }
    inv_freq_ = rope_inv_freq(c.rope, c.head_dim);
    // GGUF Llama 3 stores its frequency correction as a tensor instead of config values.
    if (const Weight* rf = ws_->find("rope_freqs")) {
      BALLAST_ASSIGN_OR_RETURN(auto f, ws_->get_f32("rope_freqs", c.head_dim / 2));
      for (int64_t i = 0; i < c.head_dim / 2; ++i) inv_freq_[i] /= f[i];
      (void)rf;
    }
    return Status();
  }

  Status forward(const Batch& b, engine::KvCache& kv, std::vector<float>& logits,
                 const ForwardOptions& opts) override {
    const auto& c = cfg_;
    ThreadPool& pool = *pool_;
    const int64_t n = static_cast<int64_t>(b.size());
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    std::vector<float> x(n * H), h(n * H), q(n * qd), k(n * kd), v(n * kd), att(n * qd),
        g(n * c.ffn), u(n * c.ffn);  // x,h: (n, H); q/att: (n, n_heads, hd); k/v: (n, n_kv, hd); g/u: (n, ffn)
    BALLAST_RETURN_IF_ERROR(embed_tokens(*emb_, b.tokens, 1.0f, x.data(), pool));
    cpu::AttentionParams ap;
    ap.n_heads = c.n_heads;
    ap.n_kv_heads = c.n_kv_heads;
    ap.head_dim = c.head_dim;
    ap.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
    ap.window = c.sliding_window;
    const float eps = static_cast<float>(c.rms_eps);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const auto& ly = layers_[l];
      for (int64_t t = 0; t < n; ++t) cpu::rmsnorm(&h[t * H], &x[t * H], ly.ln1.data(), H, eps);
      linear(*ly.q, h.data(), n, q.data(), pool, c.attn_bias ? &ly.bq : nullptr);
      linear(*ly.k, h.data(), n, k.data(), pool, c.attn_bias ? &ly.bk : nullptr);
      linear(*ly.v, h.data(), n, v.data(), pool, c.attn_bias ? &ly.bv : nullptr);
      if (c.qk_norm) {
        cpu::rmsnorm_rows(q.data(), q.data(), ly.q_norm.data(), n * c.n_heads, c.head_dim, eps);
        cpu::rmsnorm_rows(k.data(), k.data(), ly.k_norm.data(), n * c.n_kv_heads, c.head_dim, eps);
      }
      apply_rope(q.data(), n, c.n_heads, c.head_dim, b.positions, inv_freq_, c.rope_layout, pool);
      apply_rope(k.data(), n, c.n_kv_heads, c.head_dim, b.positions, inv_freq_, c.rope_layout, pool);
      BALLAST_RETURN_IF_ERROR(attend(b, l, q.data(), k.data(), v.data(), kv, ap, att.data(), pool));
      linear(*ly.o, att.data(), n, h.data(), pool);
      cpu::add(x.data(), x.data(), h.data(), n * H);
      for (int64_t t = 0; t < n; ++t) cpu::rmsnorm(&h[t * H], &x[t * H], ly.ln2.data(), H, eps);
      linear(*ly.gate, h.data(), n, g.data(), pool);
      linear(*ly.up, h.data(), n, u.data(), pool);
      cpu::swiglu(g.data(), g.data(), u.data(), n * c.ffn);
      linear(*ly.down, g.data(), n, h.data(), pool);
      cpu::add(x.data(), x.data(), h.data(), n * H);
      if (opts.check_numerics)
        BALLAST_RETURN_IF_ERROR(check_finite(x.data(), n, H, "layer " + std::to_string(l), b));
    }
    head_logits(x.data(), b, final_norm_, logits);
    return Status();
  }

 private:
  std::vector<float> final_norm_, inv_freq_;
  std::vector<LlamaLayer> layers_;
};

Status read_hf(const nlohmann::json& cfg, ModelConfig& out) {
  const std::string file = "config.json";
  BALLAST_RETURN_IF_ERROR(read_hf_rope(cfg, file, "", 10000.0, out.rope));
  out.rope_layout = RopeLayout::kNeox;
  out.act = Activation::kSilu;
  if (out.source_arch == "Qwen2ForCausalLM") out.attn_bias = true;
  if (cfg.contains("attention_bias") && cfg["attention_bias"].is_boolean()) out.attn_bias = cfg["attention_bias"].get<bool>();
  if (out.source_arch == "Qwen3ForCausalLM") out.qk_norm = true;
  if (cfg.contains("sliding_window") && cfg["sliding_window"].is_number_integer() &&
      (!cfg.contains("use_sliding_window") || cfg["use_sliding_window"] == true) &&
      out.source_arch == "MistralForCausalLM")
    out.sliding_window = cfg["sliding_window"].get<int64_t>();
  if (cfg.contains("hidden_act") && cfg["hidden_act"].is_string() && cfg["hidden_act"] != "silu")
    return error(ErrorCode::kUnsupported, file + ": field 'hidden_act' = " + cfg["hidden_act"].dump() + " (only silu)");
  return Status();
}

Status read_gguf(const io::GgufFile& f, const std::string& p, ModelConfig& out) {
  // llama.cpp's converter permutes llama/mistral q/k rows for interleaved RoPE;
  // Qwen2/Qwen3 keep HF's rotate-half order.
  out.rope_layout = (p == "llama" || p == "mistral") ? RopeLayout::kInterleaved : RopeLayout::kNeox;
  out.qk_norm = f.tensor("blk.0.attn_q_norm.weight") != nullptr;
  out.attn_bias = f.tensor("blk.0.attn_q.bias") != nullptr;
  out.tie_embeddings = f.tensor("output.weight") == nullptr;
  if (auto w = f.get_int(p + ".attention.sliding_window"); w && p == "mistral") out.sliding_window = *w;
  return Status();
}

std::vector<std::string> required(const ModelConfig& c) {
  std::vector<std::string> r = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    for (const char* s : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                          "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"})
      r.push_back(layer_name(l, s));
    if (c.qk_norm) r.insert(r.end(), {layer_name(l, "self_attn.q_norm.weight"), layer_name(l, "self_attn.k_norm.weight")});
    if (c.attn_bias)
      r.insert(r.end(), {layer_name(l, "self_attn.q_proj.bias"), layer_name(l, "self_attn.k_proj.bias"), layer_name(l, "self_attn.v_proj.bias")});
  }
  if (!c.tie_embeddings) r.push_back("lm_head.weight");
  return r;
}

}  // namespace

const ArchSpec& llama_arch() {
  static const ArchSpec kSpec{
      "llama",
      {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"},
      {"llama", "mistral", "qwen2", "qwen3"},
      read_hf,
      read_gguf,
      {
          {"token_embd.weight", "model.embed_tokens.weight"},
          {"output_norm.weight", "model.norm.weight"},
          {"output.weight", "lm_head.weight"},
          {"rope_freqs.weight", "rope_freqs"},
          {"blk.{}.attn_norm.weight", "model.layers.{}.input_layernorm.weight"},
          {"blk.{}.attn_q.weight", "model.layers.{}.self_attn.q_proj.weight"},
          {"blk.{}.attn_k.weight", "model.layers.{}.self_attn.k_proj.weight"},
          {"blk.{}.attn_v.weight", "model.layers.{}.self_attn.v_proj.weight"},
          {"blk.{}.attn_q.bias", "model.layers.{}.self_attn.q_proj.bias"},
          {"blk.{}.attn_k.bias", "model.layers.{}.self_attn.k_proj.bias"},
          {"blk.{}.attn_v.bias", "model.layers.{}.self_attn.v_proj.bias"},
          {"blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight"},
          {"blk.{}.attn_q_norm.weight", "model.layers.{}.self_attn.q_norm.weight"},
          {"blk.{}.attn_k_norm.weight", "model.layers.{}.self_attn.k_norm.weight"},
          {"blk.{}.ffn_norm.weight", "model.layers.{}.post_attention_layernorm.weight"},
          {"blk.{}.ffn_gate.weight", "model.layers.{}.mlp.gate_proj.weight"},
          {"blk.{}.ffn_up.weight", "model.layers.{}.mlp.up_proj.weight"},
          {"blk.{}.ffn_down.weight", "model.layers.{}.mlp.down_proj.weight"},
      },
      required,
      create_decoder<LlamaModel>,
  };
  return kSpec;
}

}  // namespace ballast::model
