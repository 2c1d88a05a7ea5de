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
  backend::WeightId qkv, o, gate_up, down;  // (qd + 2kd, H), (H, qd), (2F, H), (H, F)
  backend::WeightId ln1, ln2;               // (H)
  backend::WeightId bias = backend::kNoWeight;                             // (qd + 2kd) q|k|v (Qwen2)
  backend::WeightId q_norm = backend::kNoWeight, k_norm = backend::kNoWeight;  // (hd) (Qwen3)
};

class LlamaModel : public DecoderModel {
 public:
  using DecoderModel::DecoderModel;

  Status bind(Binder& b) override {
    const auto& c = cfg_;
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    BALLAST_RETURN_IF_ERROR(bind_embeddings(b, "model.embed_tokens.weight", "lm_head.weight"));
    BALLAST_ASSIGN_OR_RETURN(final_norm_, b.vector("model.norm.weight", H));
    layers_.resize(c.n_layers);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      auto& ly = layers_[l];
      BALLAST_ASSIGN_OR_RETURN(ly.qkv, b.matrix({{layer_name(l, "self_attn.q_proj.weight"), qd},
                                                 {layer_name(l, "self_attn.k_proj.weight"), kd},
                                                 {layer_name(l, "self_attn.v_proj.weight"), kd}}, H));
      BALLAST_ASSIGN_OR_RETURN(ly.o, b.matrix(layer_name(l, "self_attn.o_proj.weight"), H, qd));
      BALLAST_ASSIGN_OR_RETURN(ly.gate_up, b.matrix({{layer_name(l, "mlp.gate_proj.weight"), c.ffn},
                                                     {layer_name(l, "mlp.up_proj.weight"), c.ffn}}, H));
      BALLAST_ASSIGN_OR_RETURN(ly.down, b.matrix(layer_name(l, "mlp.down_proj.weight"), H, c.ffn));
      BALLAST_ASSIGN_OR_RETURN(ly.ln1, b.vector(layer_name(l, "input_layernorm.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln2, b.vector(layer_name(l, "post_attention_layernorm.weight"), H));
      if (c.qk_norm) {
        BALLAST_ASSIGN_OR_RETURN(ly.q_norm, b.vector(layer_name(l, "self_attn.q_norm.weight"), c.head_dim));
        BALLAST_ASSIGN_OR_RETURN(ly.k_norm, b.vector(layer_name(l, "self_attn.k_norm.weight"), c.head_dim));
      }
      if (c.attn_bias) {
        BALLAST_ASSIGN_OR_RETURN(ly.bias, b.vectors({layer_name(l, "self_attn.q_proj.bias"),
                                                     layer_name(l, "self_attn.k_proj.bias"),
                                                     layer_name(l, "self_attn.v_proj.bias")}, {qd, kd, kd}));
      }
    }
    auto inv_freq = rope_inv_freq(c.rope, c.head_dim);
    // GGUF Llama 3 stores its frequency correction as a tensor instead of config values.
    if (b.has("rope_freqs")) {
      BALLAST_ASSIGN_OR_RETURN(auto f, b.values("rope_freqs", c.head_dim / 2));
      for (int64_t i = 0; i < c.head_dim / 2; ++i) inv_freq[i] /= f[i];
    }
    BALLAST_ASSIGN_OR_RETURN(rope_, b.backend().add_rope(inv_freq));
    return Status();
  }

  Status forward(backend::Ops& o) const override {
    const auto& c = cfg_;
    const float eps = static_cast<float>(c.rms_eps);
    backend::AttentionSpec as;
    as.n_heads = static_cast<int>(c.n_heads);
    as.n_kv_heads = static_cast<int>(c.n_kv_heads);
    as.head_dim = static_cast<int>(c.head_dim);
    as.window = static_cast<int>(c.sliding_window);
    as.qk_eps = eps;
    as.rope = rope_;
    as.rope_interleaved = c.rope_layout == RopeLayout::kInterleaved;
    backend::Tensor x = o.embed(emb_, 1.0f);  // (n, H) residual stream
    for (int64_t l = 0; l < c.n_layers; ++l) {
      backend::Ops::Scope scope(o);
      const auto& ly = layers_[l];
      as.layer = static_cast<int>(l);
      as.q_norm = ly.q_norm;
      as.k_norm = ly.k_norm;
      backend::Tensor qkv = o.linear(o.norm(x, {backend::NormKind::kRms, ly.ln1, backend::kNoWeight, eps}), ly.qkv,
                                     ly.bias);                                     // (n, qd + 2kd)
      o.linear_add(o.attention(qkv, as), ly.o, x);                                 // x += attn @ o^T
      backend::Tensor act = o.linear_glu(o.norm(x, {backend::NormKind::kRms, ly.ln2, backend::kNoWeight, eps}),
                                         ly.gate_up, backend::Act::kSilu);         // (n, F)
      o.linear_add(act, ly.down, x);
      o.check(x, l);
    }
    o.logits(x, {backend::NormKind::kRms, final_norm_, backend::kNoWeight, eps}, head_,
             static_cast<float>(c.final_logit_softcap));
    return o.status();
  }

 private:
  backend::WeightId final_norm_ = backend::kNoWeight;
  backend::RopeId rope_ = -1;
  std::vector<LlamaLayer> layers_;
};

Status read_hf(const nlohmann::json& cfg, ModelConfig& out) {
  const std::string file = "config.json";
  BALLAST_RETURN_IF_ERROR(read_hf_rope(cfg, file, "", 10000.0, out.rope));
  if (out.rope.scaling == RopeScaling::kLongrope)
    return error(ErrorCode::kUnsupported, file + ": rope type 'longrope' is not supported for " + out.source_arch);
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
      create_model<LlamaModel>,
  };
  return kSpec;
}

}  // namespace ballast::model
