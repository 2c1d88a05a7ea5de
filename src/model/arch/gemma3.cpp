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
  const Weight *q, *k, *v, *o, *gate, *up, *down;
  // Norm weights with the norm offset already added: (offset + w).
  std::vector<float> ln_in, ln_post_attn, ln_pre_ffw, ln_post_ffw, q_norm, k_norm;
  bool sliding = false;
};

class Gemma3Model : public DecoderModel {
 public:
  using DecoderModel::DecoderModel;

  Result<std::vector<float>> norm(const std::string& name, int64_t n) {
    BALLAST_ASSIGN_OR_RETURN(auto w, ws_->get_f32(name, n));
    for (auto& x : w) x = static_cast<float>(x + cfg_.norm_offset);
    return w;
  }

  Status init() override {
    const auto& c = cfg_;
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    BALLAST_RETURN_IF_ERROR(bind_embeddings());
    BALLAST_ASSIGN_OR_RETURN(final_norm_, norm("model.norm.weight", H));
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
      BALLAST_ASSIGN_OR_RETURN(ly.ln_in, norm(layer_name(l, "input_layernorm.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln_post_attn, norm(layer_name(l, "post_attention_layernorm.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln_pre_ffw, norm(layer_name(l, "pre_feedforward_layernorm.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln_post_ffw, norm(layer_name(l, "post_feedforward_layernorm.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.q_norm, norm(layer_name(l, "self_attn.q_norm.weight"), c.head_dim));
      BALLAST_ASSIGN_OR_RETURN(ly.k_norm, norm(layer_name(l, "self_attn.k_norm.weight"), c.head_dim));
      ly.sliding = l < static_cast<int64_t>(c.layer_sliding.size()) && c.layer_sliding[l];
    }
    inv_freq_global_ = rope_inv_freq(c.rope, c.head_dim);
    inv_freq_local_ = rope_inv_freq(c.rope_local, c.head_dim);
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
    BALLAST_RETURN_IF_ERROR(
        embed_tokens(*emb_, b.tokens, static_cast<float>(c.embed_scale), x.data(), pool));
    const float eps = static_cast<float>(c.rms_eps);
    auto rms = [&](float* out, const float* in, const std::vector<float>& w) {
      for (int64_t t = 0; t < n; ++t) cpu::rmsnorm(out + t * H, in + t * H, w.data(), H, eps);
    };
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const auto& ly = layers_[l];
      cpu::AttentionParams ap;
      ap.n_heads = c.n_heads;
      ap.n_kv_heads = c.n_kv_heads;
      ap.head_dim = c.head_dim;
      ap.scale = static_cast<float>(c.attn_scale);
      ap.softcap = static_cast<float>(c.attn_logit_softcap);
      ap.window = ly.sliding ? c.sliding_window : 0;
      rms(h.data(), x.data(), ly.ln_in);
      linear(*ly.q, h.data(), n, q.data(), pool);
      linear(*ly.k, h.data(), n, k.data(), pool);
      linear(*ly.v, h.data(), n, v.data(), pool);
      cpu::rmsnorm_rows(q.data(), q.data(), ly.q_norm.data(), n * c.n_heads, c.head_dim, eps);
      cpu::rmsnorm_rows(k.data(), k.data(), ly.k_norm.data(), n * c.n_kv_heads, c.head_dim, eps);
      const auto& inv = ly.sliding ? inv_freq_local_ : inv_freq_global_;
      apply_rope(q.data(), n, c.n_heads, c.head_dim, b.positions, inv, c.rope_layout, pool);
      apply_rope(k.data(), n, c.n_kv_heads, c.head_dim, b.positions, inv, c.rope_layout, pool);
      BALLAST_RETURN_IF_ERROR(attend(b, l, q.data(), k.data(), v.data(), kv, ap, att.data(), pool));
      linear(*ly.o, att.data(), n, h.data(), pool);
      rms(h.data(), h.data(), ly.ln_post_attn);
      cpu::add(x.data(), x.data(), h.data(), n * H);
      rms(h.data(), x.data(), ly.ln_pre_ffw);
      linear(*ly.gate, h.data(), n, g.data(), pool);
      linear(*ly.up, h.data(), n, u.data(), pool);
      cpu::geglu_tanh(g.data(), g.data(), u.data(), n * c.ffn);
      linear(*ly.down, g.data(), n, h.data(), pool);
      rms(h.data(), h.data(), ly.ln_post_ffw);
      cpu::add(x.data(), x.data(), h.data(), n * H);
      if (opts.check_numerics)
        BALLAST_RETURN_IF_ERROR(check_finite(x.data(), n, H, "layer " + std::to_string(l), b));
    }
    head_logits(x.data(), b, final_norm_, logits);
    if (c.final_logit_softcap > 0)
      cpu::softcap(logits.data(), static_cast<float>(c.final_logit_softcap), static_cast<int64_t>(logits.size()));
    return Status();
  }

 private:
  std::vector<float> final_norm_, inv_freq_global_, inv_freq_local_;
  std::vector<GemmaLayer> layers_;
};

Status read_hf(const nlohmann::json& cfg, ModelConfig& out) {
  const std::string file = "config.json";
  out.rope_layout = RopeLayout::kNeox;
  out.act = Activation::kGeluTanh;
  out.qk_norm = true;
  out.norm_offset = 1.0;
  out.embed_scale = std::sqrt(static_cast<double>(out.hidden));
  if (!cfg.contains("tie_word_embeddings")) out.tie_embeddings = true;
  BALLAST_RETURN_IF_ERROR(read_hf_rope(cfg, file, "full_attention", 1000000.0, out.rope));
  BALLAST_ASSIGN_OR_RETURN(double local_base, json_num(cfg, "rope_local_base_freq", file, 10000.0));
  BALLAST_RETURN_IF_ERROR(read_hf_rope(cfg, file, "sliding_attention", local_base, out.rope_local));
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
      create_decoder<Gemma3Model>,
  };
  return kSpec;
}

}  // namespace ballast::model
