// Gemma 3 text: sqrt(hidden)-scaled embeddings, (1 + w) RMSNorms before and after both
// sublayers, per-head q/k norms, sliding-window and global layers with their own RoPE
// bases, GeGLU (tanh) MLP, tied head, optional logit soft-capping.
#include <cmath>

#include "io/gguf.h"
#include "model/hf_config.h"
#include "model/layers/layers.h"
#include "model/registry.h"

namespace ballast::model {
namespace {


struct GemmaLayer {
  backend::WeightId qkv, o, gate_up, down;  // (qd + 2kd, H), (H, qd), (2F, H), (H, F)
  // Norm weights with the norm offset already added: (offset + w).
  backend::WeightId ln_in, ln_post_attn, ln_pre_ffw, ln_post_ffw, q_norm, k_norm;
  bool sliding = false;
};

class Gemma3Model : public DecoderModel {
 public:
  using DecoderModel::DecoderModel;

  Status bind(Binder& b) override {
    const auto& c = cfg_;
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    const float off = static_cast<float>(c.norm_offset), one = 1.0f - off;  // random norms: offset + w = 1
    BALLAST_RETURN_IF_ERROR(bind_embeddings(b, "model.embed_tokens.weight", "lm_head.weight"));
    BALLAST_ASSIGN_OR_RETURN(final_norm_, b.vector("model.norm.weight", H, off, one));
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
      BALLAST_ASSIGN_OR_RETURN(ly.ln_in, b.vector(layer_name(l, "input_layernorm.weight"), H, off, one));
      BALLAST_ASSIGN_OR_RETURN(ly.ln_post_attn, b.vector(layer_name(l, "post_attention_layernorm.weight"), H, off, one));
      BALLAST_ASSIGN_OR_RETURN(ly.ln_pre_ffw, b.vector(layer_name(l, "pre_feedforward_layernorm.weight"), H, off, one));
      BALLAST_ASSIGN_OR_RETURN(ly.ln_post_ffw, b.vector(layer_name(l, "post_feedforward_layernorm.weight"), H, off, one));
      BALLAST_ASSIGN_OR_RETURN(ly.q_norm, b.vector(layer_name(l, "self_attn.q_norm.weight"), c.head_dim, off, one));
      BALLAST_ASSIGN_OR_RETURN(ly.k_norm, b.vector(layer_name(l, "self_attn.k_norm.weight"), c.head_dim, off, one));
      ly.sliding = l < static_cast<int64_t>(c.layer_sliding.size()) && c.layer_sliding[l];
    }
    BALLAST_ASSIGN_OR_RETURN(rope_global_, b.backend().add_rope(rope_inv_freq(c.rope, c.head_dim)));
    BALLAST_ASSIGN_OR_RETURN(rope_local_, b.backend().add_rope(rope_inv_freq(c.rope_local, c.head_dim)));
    return Status();
  }

  Status forward(backend::Ops& o) const override {
    const auto& c = cfg_;
    const float eps = static_cast<float>(c.rms_eps);
    auto rms = [&](backend::WeightId w) { return backend::Norm{backend::NormKind::kRms, w, backend::kNoWeight, eps}; };
    backend::AttentionSpec as;
    as.n_heads = static_cast<int>(c.n_heads);
    as.n_kv_heads = static_cast<int>(c.n_kv_heads);
    as.head_dim = static_cast<int>(c.head_dim);
    as.scale = static_cast<float>(c.attn_scale);
    as.softcap = static_cast<float>(c.attn_logit_softcap);
    as.qk_eps = eps;
    as.rope_interleaved = c.rope_layout == RopeLayout::kInterleaved;
    backend::Tensor x = o.embed(emb_, static_cast<float>(c.embed_scale));  // (n, H) residual stream
    for (int64_t l = 0; l < c.n_layers; ++l) {
      backend::Ops::Scope scope(o);
      const auto& ly = layers_[l];
      as.layer = static_cast<int>(l);
      as.q_norm = ly.q_norm;
      as.k_norm = ly.k_norm;
      as.window = ly.sliding ? static_cast<int>(c.sliding_window) : 0;
      as.rope = ly.sliding ? rope_local_ : rope_global_;
      backend::Tensor qkv = o.linear(o.norm(x, rms(ly.ln_in)), ly.qkv);         // (n, qd + 2kd)
      backend::Tensor att = o.linear(o.attention(qkv, as), ly.o);              // (n, H)
      o.add(x, o.norm(att, rms(ly.ln_post_attn)));                             // sandwich norm
      backend::Tensor act = o.linear_glu(o.norm(x, rms(ly.ln_pre_ffw)), ly.gate_up, backend::Act::kGeluTanh);
      o.add(x, o.norm(o.linear(act, ly.down), rms(ly.ln_post_ffw)));
      o.check(x, l);
    }
    o.logits(x, rms(final_norm_), head_, static_cast<float>(c.final_logit_softcap));
    return o.status();
  }

 private:
  backend::WeightId final_norm_ = backend::kNoWeight;
  backend::RopeId rope_global_ = -1, rope_local_ = -1;
  std::vector<GemmaLayer> layers_;
};

Status read_hf(const nlohmann::json& cfg, ModelConfig& out) {
  const std::string file = "config.json";
  out.rope_layout = RopeLayout::kNeox;
  out.act = Activation::kGeluTanh;
  out.qk_norm = true;
  out.norm_offset = 1.0;
  out.fp16_overflow_prone = true;
  out.embed_scale = std::sqrt(static_cast<double>(out.hidden));
  if (!cfg.contains("tie_word_embeddings")) out.tie_embeddings = true;
  BALLAST_RETURN_IF_ERROR(read_hf_rope(cfg, file, "full_attention", 1000000.0, out.rope));
  BALLAST_ASSIGN_OR_RETURN(double local_base, json_num(cfg, "rope_local_base_freq", file, 10000.0));
  BALLAST_RETURN_IF_ERROR(read_hf_rope(cfg, file, "sliding_attention", local_base, out.rope_local));
  if (out.rope.scaling == RopeScaling::kLongrope || out.rope_local.scaling == RopeScaling::kLongrope)
    return error(ErrorCode::kUnsupported, file + ": rope type 'longrope' is not supported for " + out.source_arch);
  if (!(cfg.contains("rope_parameters") && cfg["rope_parameters"].contains("sliding_attention"))) {
    out.rope_local = RopeParams{};  // older configs: local layers use an unscaled base
    out.rope_local.theta = local_base;
  }
  BALLAST_ASSIGN_OR_RETURN(double qpas, json_num(cfg, "query_pre_attn_scalar", file, static_cast<double>(out.head_dim)));
  out.attn_scale = 1.0 / std::sqrt(qpas);
  BALLAST_ASSIGN_OR_RETURN(out.sliding_window, json_int(cfg, "sliding_window", file, 4096));
  BALLAST_ASSIGN_OR_RETURN(out.final_logit_softcap, json_num(cfg, "final_logit_softcapping", file, 0.0));
  BALLAST_ASSIGN_OR_RETURN(out.attn_logit_softcap, json_num(cfg, "attn_logit_softcapping", file, 0.0));
  out.layer_sliding.assign(out.n_layers, false);
  if (cfg.contains("layer_types") && cfg["layer_types"].is_array()) {
    const auto& lt = cfg["layer_types"];
    if (static_cast<int64_t>(lt.size()) != out.n_layers)
      return error(ErrorCode::kFormatError, file + ": field 'layer_types' has " + std::to_string(lt.size()) +
                                                " entries for " + std::to_string(out.n_layers) + " layers");
    for (int64_t l = 0; l < out.n_layers; ++l) out.layer_sliding[l] = lt[l] == "sliding_attention";
  } else {
    BALLAST_ASSIGN_OR_RETURN(int64_t pattern, json_int(cfg, "sliding_window_pattern", file, 6));
    for (int64_t l = 0; l < out.n_layers; ++l) out.layer_sliding[l] = pattern > 0 && (l + 1) % pattern != 0;
  }
  if (cfg.contains("hidden_activation") && cfg["hidden_activation"].is_string() &&
      cfg["hidden_activation"] != "gelu_pytorch_tanh")
    return error(ErrorCode::kUnsupported, file + ": field 'hidden_activation' = " + cfg["hidden_activation"].dump());
  return Status();
}

Status read_gguf(const io::GgufFile& f, const std::string& p, ModelConfig& out) {
  out.rope_layout = RopeLayout::kNeox;
  out.act = Activation::kGeluTanh;
  out.qk_norm = true;
  out.fp16_overflow_prone = true;
  out.norm_offset = 0.0;  // llama.cpp's converter stores Gemma norms as 1 + w
  out.embed_scale = std::sqrt(static_cast<double>(out.hidden));
  out.tie_embeddings = f.tensor("output.weight") == nullptr;
  out.attn_scale = 1.0 / std::sqrt(static_cast<double>(out.head_dim));
  out.sliding_window = f.get_int(p + ".attention.sliding_window").value_or(512);
  out.rope_local = RopeParams{};
  out.rope_local.theta = 10000.0;
  out.final_logit_softcap = f.get_float(p + ".final_logit_softcapping").value_or(0.0);
  out.attn_logit_softcap = f.get_float(p + ".attn_logit_softcapping").value_or(0.0);
  // GGUF has no layer-type list; Gemma 3 puts a global layer after every 5 local ones.
  out.layer_sliding.assign(out.n_layers, false);
  for (int64_t l = 0; l < out.n_layers; ++l) out.layer_sliding[l] = (l + 1) % 6 != 0;
  return Status();
}

std::vector<std::string> required(const ModelConfig& c) {
  std::vector<std::string> r = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const char* s : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
                          "input_layernorm.weight", "post_attention_layernorm.weight",
                          "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight"})
      r.push_back(layer_name(l, s));
  if (!c.tie_embeddings) r.push_back("lm_head.weight");
  return r;
}

}  // namespace

const ArchSpec& gemma3_arch() {
  static const ArchSpec kSpec{
      "gemma3",
      {"Gemma3ForCausalLM"},
      {"gemma3"},
      read_hf,
      read_gguf,
      {
          {"token_embd.weight", "model.embed_tokens.weight"},
          {"output_norm.weight", "model.norm.weight"},
          {"output.weight", "lm_head.weight"},
          {"blk.{}.attn_norm.weight", "model.layers.{}.input_layernorm.weight"},
          {"blk.{}.attn_q.weight", "model.layers.{}.self_attn.q_proj.weight"},
          {"blk.{}.attn_k.weight", "model.layers.{}.self_attn.k_proj.weight"},
          {"blk.{}.attn_v.weight", "model.layers.{}.self_attn.v_proj.weight"},
          {"blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight"},
          {"blk.{}.attn_q_norm.weight", "model.layers.{}.self_attn.q_norm.weight"},
          {"blk.{}.attn_k_norm.weight", "model.layers.{}.self_attn.k_norm.weight"},
          {"blk.{}.post_attention_norm.weight", "model.layers.{}.post_attention_layernorm.weight"},
          {"blk.{}.ffn_norm.weight", "model.layers.{}.pre_feedforward_layernorm.weight"},
          {"blk.{}.post_ffw_norm.weight", "model.layers.{}.post_feedforward_layernorm.weight"},
          {"blk.{}.ffn_gate.weight", "model.layers.{}.mlp.gate_proj.weight"},
          {"blk.{}.ffn_up.weight", "model.layers.{}.mlp.up_proj.weight"},
          {"blk.{}.ffn_down.weight", "model.layers.{}.mlp.down_proj.weight"},
      },
      required,
      create_model<Gemma3Model>,
  };
  return kSpec;
}

}  // namespace ballast::model
