// Phi-3 (Phi3ForCausalLM, GGUF phi3; also Phi-3.5-mini and Phi-4-mini): a Llama block with
// q|k|v and gate|up stored fused, LongRoPE (short / long frequency factors around the original
// context, cos/sin scaled by an attention factor), optional partial rotary and sliding window.
#include <cmath>

#include "io/gguf.h"
#include "model/hf_config.h"
#include "model/layers/layers.h"
#include "model/registry.h"

namespace ballast::model {
namespace {

struct Phi3Layer {
  backend::WeightId qkv, o, gate_up, down;  // (qd + 2kd, H), (H, qd), (2F, H), (H, F)
  backend::WeightId ln1, ln2;               // (H)
};

// Rotated dims of a head: int(head_dim * partial_rotary_factor), as transformers takes it.
int64_t rotary_dims(const ModelConfig& c) {
  return static_cast<int64_t>(static_cast<double>(c.head_dim) * c.rope.partial_rotary);
}

class Phi3Model : public DecoderModel {
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
      // Stored fused as transformers' Phi3 modules hold them: rows [q | k | v] and [gate | up].
      BALLAST_ASSIGN_OR_RETURN(ly.qkv, b.matrix(layer_name(l, "self_attn.qkv_proj.weight"), qd + 2 * kd, H));
      BALLAST_ASSIGN_OR_RETURN(ly.o, b.matrix(layer_name(l, "self_attn.o_proj.weight"), H, qd));
      BALLAST_ASSIGN_OR_RETURN(ly.gate_up, b.matrix(layer_name(l, "mlp.gate_up_proj.weight"), 2 * c.ffn, H));
      BALLAST_ASSIGN_OR_RETURN(ly.down, b.matrix(layer_name(l, "mlp.down_proj.weight"), H, c.ffn));
      BALLAST_ASSIGN_OR_RETURN(ly.ln1, b.vector(layer_name(l, "input_layernorm.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln2, b.vector(layer_name(l, "post_attention_layernorm.weight"), H));
    }
    const int64_t rot = rotary_dims(c);
    RopeParams rp = c.rope;
    // GGUF keeps the LongRoPE factors as tensors (config.json has them as lists).
    if (rp.scaling == RopeScaling::kLongrope && rp.long_factor.empty() && !b.random()) {
      BALLAST_ASSIGN_OR_RETURN(auto lf, b.values("rope_factors_long", rot / 2));
      BALLAST_ASSIGN_OR_RETURN(auto sf, b.values("rope_factors_short", rot / 2));
      rp.long_factor.assign(lf.begin(), lf.end());
      rp.short_factor.assign(sf.begin(), sf.end());
    }
    BALLAST_ASSIGN_OR_RETURN(auto table, rope_table(rp, rot));
    BALLAST_ASSIGN_OR_RETURN(rope_, b.backend().add_rope(table));
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
    as.window = static_cast<int>(c.sliding_window);  // every layer when configured
    as.rope = rope_;
    backend::Tensor x = o.embed(emb_, 1.0f);  // (n, H) residual stream
    for (int64_t l = 0; l < c.n_layers; ++l) {
      backend::Ops::Scope scope(o);
      const auto& ly = layers_[l];
      as.layer = static_cast<int>(l);
      backend::Tensor qkv = o.linear(o.norm(x, rms(ly.ln1)), ly.qkv);                 // (n, qd + 2kd)
      o.linear_add(o.attention(qkv, as), ly.o, x);                                    // x += attn @ o^T
      o.linear_add(o.linear_glu(o.norm(x, rms(ly.ln2)), ly.gate_up, backend::Act::kSilu), ly.down, x);
      o.check(x, l);
    }
    o.logits(x, rms(final_norm_), head_, 0.f);
    return o.status();
  }

  // Past the original context the long factors apply to the whole sequence (transformers'
  // Phi-3 generate drops its cache there to recompute it).
  int64_t recompute_after() const override {
    return cfg_.rope.scaling == RopeScaling::kLongrope ? static_cast<int64_t>(cfg_.rope.original_max_pos) : 0;
  }

 private:
  backend::WeightId final_norm_ = backend::kNoWeight;
  backend::RopeId rope_ = -1;
  std::vector<Phi3Layer> layers_;
};

// Phi3Config's conventions, made explicit for the common readers: the older rope type name
// "su" is LongRoPE, and original_max_position_embeddings (top level, default 4096) is always
// present, so it decides the long/short switch over any value inside the rope dict.
void normalize_hf(nlohmann::json& cfg) {
  for (const char* dict : {"rope_scaling", "rope_parameters"}) {
    if (!cfg.contains(dict) || !cfg[dict].is_object()) continue;
    for (const char* key : {"type", "rope_type"})
      if (cfg[dict].contains(key) && cfg[dict][key] == "su") cfg[dict][key] = "longrope";
  }
  if (!cfg.contains("original_max_position_embeddings") || cfg["original_max_position_embeddings"].is_null())
    cfg["original_max_position_embeddings"] = 4096;
}

Status check_rope(const ModelConfig& c, const std::string& where) {
  const int64_t rot = rotary_dims(c);
  if (rot <= 0 || rot % 2 || rot > c.head_dim)
    return error(ErrorCode::kFormatError, where + ": partial_rotary_factor " + std::to_string(c.rope.partial_rotary) +
                                              " gives " + std::to_string(rot) + " rotary dims of head_dim " +
                                              std::to_string(c.head_dim) + " (need a positive even number)");
  return Status();
}

Status read_hf(const nlohmann::json& cfg, ModelConfig& out) {
  const std::string file = "config.json";
  BALLAST_RETURN_IF_ERROR(read_hf_rope(cfg, file, "", 10000.0, out.rope));
  if (out.rope.scaling != RopeScaling::kNone && out.rope.scaling != RopeScaling::kLongrope)
    return error(ErrorCode::kUnsupported, file + ": Phi-3 rope scaling must be longrope (or su) or none");
  if (out.rope.scaling == RopeScaling::kLongrope) {
    const size_t n = static_cast<size_t>(rotary_dims(out) / 2);
    if (out.rope.short_factor.size() != n || out.rope.long_factor.size() != n)
      return error(ErrorCode::kFormatError, file + ": rope short_factor / long_factor have " +
                                                std::to_string(out.rope.short_factor.size()) + " / " +
                                                std::to_string(out.rope.long_factor.size()) + " entries; need " +
                                                std::to_string(n) + " (one per rotary pair)");
  }
  out.rope_layout = RopeLayout::kNeox;
  out.act = Activation::kSilu;
  // transformers applies sliding_window (when not null) to every layer: keys in (p - w, p].
  if (cfg.contains("sliding_window") && !cfg["sliding_window"].is_null()) {
    BALLAST_ASSIGN_OR_RETURN(int64_t w, json_int(cfg, "sliding_window", file));
    out.sliding_window = w > 0 ? w : 0;
  }
  if (cfg.contains("hidden_act") && cfg["hidden_act"].is_string() && cfg["hidden_act"] != "silu")
    return error(ErrorCode::kUnsupported, file + ": field 'hidden_act' = " + cfg["hidden_act"].dump() + " (only silu)");
  return check_rope(out, file);
}

// llama.cpp's converter: LongRoPE as rope_factors_long/short tensors plus
// rope.scaling.attn_factor and rope.scaling.original_context_length; partial rotary as
// rope.dimension_count; q|k|v rows unpermuted (rotate-half).
Status read_gguf(const io::GgufFile& f, const std::string& p, ModelConfig& out) {
  out.rope_layout = RopeLayout::kNeox;
  out.act = Activation::kSilu;
  out.tie_embeddings = f.tensor("output.weight") == nullptr;
  if (auto d = f.get_int(p + ".rope.dimension_count"); d && *d > 0 && out.head_dim > 0)
    out.rope.partial_rotary = static_cast<double>(*d) / static_cast<double>(out.head_dim);
  // Applied as transformers does for the same model (llama.cpp currently ignores it for Phi).
  if (auto w = f.get_int(p + ".attention.sliding_window"); w && *w > 0) out.sliding_window = *w;
  if (f.tensor("rope_factors_long.weight") != nullptr) {
    out.rope.scaling = RopeScaling::kLongrope;
    out.rope.original_max_pos =
        static_cast<double>(f.get_int(p + ".rope.scaling.original_context_length").value_or(out.max_pos));
    const double factor = static_cast<double>(out.max_pos) / out.rope.original_max_pos;
    out.rope.attention_factor = f.get_float(p + ".rope.scaling.attn_factor")
                                    .value_or(factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(factor) /
                                                                                   std::log(out.rope.original_max_pos)));
  }
  return check_rope(out, f.path());
}

std::vector<std::string> required(const ModelConfig& c) {
  std::vector<std::string> r = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const char* s : {"self_attn.qkv_proj.weight", "self_attn.o_proj.weight", "mlp.gate_up_proj.weight",
                          "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"})
      r.push_back(layer_name(l, s));
  if (!c.tie_embeddings) r.push_back("lm_head.weight");
  return r;
}

}  // namespace

const ArchSpec& phi3_arch() {
  static const ArchSpec kSpec{
      "phi3",
      {"Phi3ForCausalLM"},
      {"phi3"},
      read_hf,
      read_gguf,
      {
          {"token_embd.weight", "model.embed_tokens.weight"},
          {"output_norm.weight", "model.norm.weight"},
          {"output.weight", "lm_head.weight"},
          {"rope_factors_long.weight", "rope_factors_long"},
          {"rope_factors_short.weight", "rope_factors_short"},
          {"blk.{}.attn_norm.weight", "model.layers.{}.input_layernorm.weight"},
          {"blk.{}.attn_qkv.weight", "model.layers.{}.self_attn.qkv_proj.weight"},
          {"blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight"},
          {"blk.{}.ffn_norm.weight", "model.layers.{}.post_attention_layernorm.weight"},
          {"blk.{}.ffn_up.weight", "model.layers.{}.mlp.gate_up_proj.weight"},  // gate | up
          {"blk.{}.ffn_down.weight", "model.layers.{}.mlp.down_proj.weight"},
      },
      required,
      create_model<Phi3Model>,
      "model.embed_tokens.weight",
      normalize_hf,
  };
  return kSpec;
}

}  // namespace ballast::model
