// T5 / flan-t5 / mT5 (T5ForConditionalGeneration): an encoder-decoder. Both stacks use
// RMS-style norms without mean or bias before each sublayer, attention without score
// scaling and with a bucketed relative-position bias (computed by layer 0 of each stack,
// shared by its layers; bidirectional in the encoder, causal in the decoder), no absolute
// positions, and a ReLU (original T5) or gated-GELU (v1.1, flan) feed-forward. The
// decoder's layers add cross-attention over the encoder output. The LM head is untied
// (v1.1) or the shared embedding with the output rescaled by d_model^-0.5 (original;
// transformers 5 configs name the rescale scale_decoder_outputs).
//
// Steps: an encode step (plan.encode) runs the encoder over whole inputs and stores, for
// every decoder layer, the cross-attention K/V of the encoder output in the KV pool; a
// decoder step reads them through the plan's cross tables. KV layers: [0, Le) encoder
// self-attention, [Le, Le + Ld) decoder self-attention, [Le + Ld, Le + 2 Ld) cross K/V.
#include <cmath>

#include "io/gguf.h"
#include "model/hf_config.h"
#include "model/layers/layers.h"
#include "model/registry.h"

namespace ballast::model {
namespace {

std::string blk(const char* stack, int64_t l, const char* suffix) {
  return std::string(stack) + ".block." + std::to_string(l) + "." + suffix;
}

// T5's bucket of a relative position (key - query), as transformers computes it (float32
// logarithm, truncated).
int64_t rel_bucket(int64_t rel, bool bidirectional, int64_t n_buckets, int64_t max_distance) {
  int64_t bucket = 0;
  if (bidirectional) {
    n_buckets /= 2;
    if (rel > 0) bucket += n_buckets;
    rel = rel < 0 ? -rel : rel;
  } else {
    rel = rel < 0 ? -rel : 0;
  }
  const int64_t max_exact = n_buckets / 2;
  if (rel < max_exact) return bucket + rel;
  const float ratio = static_cast<float>(rel) / static_cast<float>(max_exact);
  const float scale = static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float v = std::log(ratio) / scale * static_cast<float>(n_buckets - max_exact);
  const int64_t large = std::min<int64_t>(max_exact + static_cast<int64_t>(v), n_buckets - 1);
  return bucket + large;
}

struct T5Attn {
  backend::WeightId norm, qkv, o;  // qkv: [q; k; v] (3 inner, H); cross: q (inner, H), kv [k; v] (2 inner, H)
  backend::WeightId kv = backend::kNoWeight;
};
struct T5Ffn {
  backend::WeightId norm, wi, wo;  // wi: [wi_0; wi_1] (2F, H) gated, or wi (F, H)
};
struct T5Layer {
  T5Attn self, cross;
  T5Ffn ffn;
};

class T5Model : public DecoderModel {
 public:
  using DecoderModel::DecoderModel;

  int64_t enc_layers() const { return cfg_.n_layers; }
  int64_t dec_layers() const { return cfg_.n_decoder_layers > 0 ? cfg_.n_decoder_layers : cfg_.n_layers; }
  int64_t inner() const { return cfg_.n_heads * cfg_.head_dim; }

  backend::KvLayout kv_layout() const override {
    return {enc_layers() + 2 * dec_layers(), cfg_.n_heads, cfg_.head_dim};
  }
  bool encoder_decoder() const override { return true; }

  Status bind(Binder& b) override {
    const auto& c = cfg_;
    const int64_t H = c.hidden, I = inner(), F = c.ffn;
    BALLAST_RETURN_IF_ERROR(bind_embeddings(b, "shared.weight", "lm_head.weight"));
    auto attn = [&](const char* stack, int64_t l, const char* sub, const char* kind, bool cross) -> Result<T5Attn> {
      T5Attn a;
      const std::string p = std::string(sub) + "." + kind + ".";
      BALLAST_ASSIGN_OR_RETURN(a.norm, b.vector(blk(stack, l, (std::string(sub) + ".layer_norm.weight").c_str()), H));
      if (cross) {
        BALLAST_ASSIGN_OR_RETURN(a.qkv, b.matrix(blk(stack, l, (p + "q.weight").c_str()), I, H));
        BALLAST_ASSIGN_OR_RETURN(a.kv, b.matrix({{blk(stack, l, (p + "k.weight").c_str()), I},
                                                 {blk(stack, l, (p + "v.weight").c_str()), I}}, H));
      } else {
        BALLAST_ASSIGN_OR_RETURN(a.qkv, b.matrix({{blk(stack, l, (p + "q.weight").c_str()), I},
                                                  {blk(stack, l, (p + "k.weight").c_str()), I},
                                                  {blk(stack, l, (p + "v.weight").c_str()), I}}, H));
      }
      BALLAST_ASSIGN_OR_RETURN(a.o, b.matrix(blk(stack, l, (p + "o.weight").c_str()), H, I));
      return a;
    };
    auto ffn = [&](const char* stack, int64_t l, const char* sub) -> Result<T5Ffn> {
      T5Ffn f;
      const std::string p = std::string(sub) + ".DenseReluDense.";
      BALLAST_ASSIGN_OR_RETURN(f.norm, b.vector(blk(stack, l, (std::string(sub) + ".layer_norm.weight").c_str()), H));
      if (c.gated_ffn) {
        BALLAST_ASSIGN_OR_RETURN(f.wi, b.matrix({{blk(stack, l, (p + "wi_0.weight").c_str()), F},
                                                 {blk(stack, l, (p + "wi_1.weight").c_str()), F}}, H));
      } else {
        BALLAST_ASSIGN_OR_RETURN(f.wi, b.matrix(blk(stack, l, (p + "wi.weight").c_str()), F, H));
      }
      BALLAST_ASSIGN_OR_RETURN(f.wo, b.matrix(blk(stack, l, (p + "wo.weight").c_str()), H, F));
      return f;
    };
    enc_.resize(enc_layers());
    for (int64_t l = 0; l < enc_layers(); ++l) {
      BALLAST_ASSIGN_OR_RETURN(enc_[l].self, attn("encoder", l, "layer.0", "SelfAttention", false));
      BALLAST_ASSIGN_OR_RETURN(enc_[l].ffn, ffn("encoder", l, "layer.1"));
    }
    dec_.resize(dec_layers());
    for (int64_t l = 0; l < dec_layers(); ++l) {
      BALLAST_ASSIGN_OR_RETURN(dec_[l].self, attn("decoder", l, "layer.0", "SelfAttention", false));
      BALLAST_ASSIGN_OR_RETURN(dec_[l].cross, attn("decoder", l, "layer.1", "EncDecAttention", true));
      BALLAST_ASSIGN_OR_RETURN(dec_[l].ffn, ffn("decoder", l, "layer.2"));
    }
    BALLAST_ASSIGN_OR_RETURN(enc_norm_, b.vector("encoder.final_layer_norm.weight", H));
    // Original T5's d_model^-0.5 output rescale folds into the final norm's weight.
    const float head_scale = c.scale_decoder_output ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(H))) : 1.f;
    if (b.random() || head_scale == 1.f) {
      BALLAST_ASSIGN_OR_RETURN(dec_norm_, b.vector("decoder.final_layer_norm.weight", H, 0.f, head_scale));
    } else {
      BALLAST_ASSIGN_OR_RETURN(std::vector<float> w, b.values("decoder.final_layer_norm.weight", H));
      for (float& v : w) v *= head_scale;
      BALLAST_ASSIGN_OR_RETURN(dec_norm_, b.backend().add_vector(w));
    }
    BALLAST_ASSIGN_OR_RETURN(enc_bias_, rel_bias(b, "encoder", true));
    BALLAST_ASSIGN_OR_RETURN(dec_bias_, rel_bias(b, "decoder", false));
    return Status();
  }

  Status encode(backend::Ops& o) const override {
    const int64_t Le = enc_layers(), Ld = dec_layers();
    backend::AttentionSpec as = spec();
    as.causal = false;
    as.rel_bias = enc_bias_;
    backend::Tensor x = o.embed(emb_, 1.0f);  // (n, H) residual stream
    for (int64_t l = 0; l < Le; ++l) {
      backend::Ops::Scope scope(o);
      as.layer = static_cast<int>(l);
      sublayers(o, enc_[l], x, as, nullptr);
      o.check(x, l);
    }
    backend::Tensor h = o.norm(x, rms(enc_norm_));
    for (int64_t l = 0; l < Ld; ++l) {
      backend::Ops::Scope scope(o);
      o.store_kv(o.linear(h, dec_[l].cross.kv), static_cast<int>(Le + Ld + l));  // (n, 2 inner)
    }
    return o.status();
  }

  Status forward(backend::Ops& o) const override {
    const int64_t Le = enc_layers(), Ld = dec_layers();
    backend::AttentionSpec as = spec();
    as.rel_bias = dec_bias_;
    backend::AttentionSpec cs = spec();
    cs.cross = true;
    cs.rel_max = 0;
    backend::Tensor x = o.embed(emb_, 1.0f);  // (n, H) residual stream
    for (int64_t l = 0; l < Ld; ++l) {
      backend::Ops::Scope scope(o);
      as.layer = static_cast<int>(Le + l);
      cs.layer = static_cast<int>(Le + Ld + l);
      sublayers(o, dec_[l], x, as, &cs);
      o.check(x, Le + l);
    }
    o.logits(x, rms(dec_norm_), head_, 0.f);
    return o.status();
  }

 private:
  backend::Norm rms(backend::WeightId w) const {
    return backend::Norm{backend::NormKind::kRms, w, backend::kNoWeight, static_cast<float>(cfg_.rms_eps)};
  }
  backend::AttentionSpec spec() const {
    backend::AttentionSpec a;
    a.n_heads = a.n_kv_heads = static_cast<int>(cfg_.n_heads);
    a.head_dim = static_cast<int>(cfg_.head_dim);
    a.scale = 1.0f;  // T5 does not scale scores (folded into its initialization)
    a.rel_max = static_cast<int>(cfg_.rel_max_distance);
    return a;
  }
  // Self-attention, cross-attention (decoder), feed-forward; each pre-normed, added to x.
  void sublayers(backend::Ops& o, const T5Layer& ly, backend::Tensor x, const backend::AttentionSpec& as,
                 const backend::AttentionSpec* cs) const {
    backend::Tensor qkv = o.linear(o.norm(x, rms(ly.self.norm)), ly.self.qkv);  // (n, 3 inner)
    o.linear_add(o.attention(qkv, as), ly.self.o, x);
    if (cs) {
      backend::Tensor q = o.linear(o.norm(x, rms(ly.cross.norm)), ly.cross.qkv);  // (n, inner)
      o.linear_add(o.attention(q, *cs), ly.cross.o, x);
    }
    backend::Tensor h = o.norm(x, rms(ly.ffn.norm));
    backend::Tensor a = cfg_.gated_ffn ? o.linear_glu(h, ly.ffn.wi, act_)                 // (n, F)
                                       : o.activation(o.linear(h, ly.ffn.wi), act_);
    o.linear_add(a, ly.ffn.wo, x);
  }
  // The stack's bias table expanded by distance: (n_heads, 2 R + 1), R = max_distance
  // (beyond it every distance has the last bucket).
  Result<backend::WeightId> rel_bias(Binder& b, const char* stack, bool bidirectional) const {
    const int64_t nb = cfg_.rel_buckets, R = cfg_.rel_max_distance, nh = cfg_.n_heads;
    const std::string name = blk(stack, 0, "layer.0.SelfAttention.relative_attention_bias.weight");
    std::vector<float> table;  // (buckets, heads)
    if (b.random()) {
      table.resize(static_cast<size_t>(nb * nh));
      for (size_t i = 0; i < table.size(); ++i) table[i] = 0.05f * static_cast<float>((i * 7919) % 41) - 1.0f;
    } else {
      BALLAST_ASSIGN_OR_RETURN(table, b.values(name, std::vector<int64_t>{nb, nh}));  // (buckets, heads)
    }
    std::vector<float> out(static_cast<size_t>(nh * (2 * R + 1)));
    for (int64_t d = -R; d <= R; ++d) {
      const int64_t bucket = rel_bucket(d, bidirectional, nb, R);
      for (int64_t h = 0; h < nh; ++h) out[h * (2 * R + 1) + d + R] = table[bucket * nh + h];
    }
    return b.backend().add_vector(out);
  }

  backend::Act act_ = backend::Act::kGeluTanh;
  std::vector<T5Layer> enc_, dec_;
  backend::WeightId enc_norm_ = backend::kNoWeight, dec_norm_ = backend::kNoWeight;
  backend::WeightId enc_bias_ = backend::kNoWeight, dec_bias_ = backend::kNoWeight;

  friend std::unique_ptr<Model> create_t5(ModelConfig cfg);
};

std::unique_ptr<Model> create_t5(ModelConfig cfg) {
  auto m = std::make_unique<T5Model>(std::move(cfg));
  switch (m->config().act) {
    case Activation::kRelu: m->act_ = backend::Act::kRelu; break;
    case Activation::kGeluErf: m->act_ = backend::Act::kGeluErf; break;
    case Activation::kSilu: m->act_ = backend::Act::kSilu; break;
    default: m->act_ = backend::Act::kGeluTanh;
  }
  return m;
}

// T5's config.json names (d_model, ...) as the common reader expects them.
void normalize_hf(nlohmann::json& cfg) {
  for (auto [from, to] : {std::pair{"d_model", "hidden_size"}, {"num_layers", "num_hidden_layers"},
                          {"num_heads", "num_attention_heads"}, {"d_ff", "intermediate_size"},
                          {"d_kv", "head_dim"}, {"layer_norm_epsilon", "rms_norm_eps"}})
    if (cfg.contains(from) && !cfg.contains(to)) cfg[to] = cfg[from];
  // Relative positions: no learned table bounds the length.
  if (!cfg.contains("max_position_embeddings")) cfg["max_position_embeddings"] = 1 << 20;
  if (!cfg.contains("tie_word_embeddings")) cfg["tie_word_embeddings"] = true;
}

Status read_hf(const nlohmann::json& cfg, ModelConfig& out) {
  const std::string file = "config.json";
  out.encoder_decoder = true;
  BALLAST_ASSIGN_OR_RETURN(out.n_decoder_layers, json_int(cfg, "num_decoder_layers", file, out.n_layers));
  BALLAST_ASSIGN_OR_RETURN(out.rel_buckets, json_int(cfg, "relative_attention_num_buckets", file, int64_t{32}));
  BALLAST_ASSIGN_OR_RETURN(out.rel_max_distance, json_int(cfg, "relative_attention_max_distance", file, int64_t{128}));
  if (out.n_decoder_layers <= 0 || out.rel_buckets < 4 || out.rel_max_distance <= out.rel_buckets / 4)
    return error(ErrorCode::kFormatError, file + ": num_decoder_layers / relative_attention_* out of range");
  std::string proj = cfg.value("feed_forward_proj", std::string("relu"));
  out.gated_ffn = proj.rfind("gated-", 0) == 0;
  const std::string act = out.gated_ffn ? proj.substr(6) : proj;
  // transformers maps "gated-gelu" to gelu_new (tanh); a plain "gelu" is the erf form.
  if (act == "relu") out.act = Activation::kRelu;
  else if (act == "gelu" && out.gated_ffn) out.act = Activation::kGeluTanh;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") out.act = Activation::kGeluTanh;
  else if (act == "gelu") out.act = Activation::kGeluErf;
  else if (act == "silu") out.act = Activation::kSilu;
  else return error(ErrorCode::kUnsupported, file + ": field 'feed_forward_proj' = '" + proj +
                                                 "' (relu, gated-gelu, gelu_new, gated-silu)");
  // Original T5 rescales the decoder output before its (tied) head; v1.1 / flan-t5 say
  // tie_word_embeddings: false and do not. transformers 5 writes the choice as
  // scale_decoder_outputs (and always ties, so its configs say true).
  if (cfg.contains("scale_decoder_outputs") && cfg["scale_decoder_outputs"].is_boolean())
    out.scale_decoder_output = cfg["scale_decoder_outputs"].get<bool>();
  else
    out.scale_decoder_output = !(cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"] == false);
  if (cfg.contains("decoder_start_token_id") && cfg["decoder_start_token_id"].is_number_integer())
    out.decoder_start_id = cfg["decoder_start_token_id"].get<int64_t>();
  else if (out.pad_id)
    out.decoder_start_id = out.pad_id;
  else
    out.decoder_start_id = 0;
  return Status();
}

Status read_gguf(const io::GgufFile& f, const std::string& p, ModelConfig& out) {
  out.encoder_decoder = true;
  out.rms_eps = f.get_float(p + ".attention.layer_norm_epsilon").value_or(1e-6);
  out.n_decoder_layers = out.n_layers;
  out.rel_buckets = f.get_int(p + ".attention.relative_buckets_count").value_or(32);
  out.rel_max_distance = 128;
  out.gated_ffn = f.tensor("enc.blk.0.ffn_gate.weight") != nullptr;
  out.act = out.gated_ffn ? Activation::kGeluTanh : Activation::kRelu;
  out.tie_embeddings = f.tensor("output.weight") == nullptr;
  out.scale_decoder_output = out.tie_embeddings;
  out.decoder_start_id = f.get_int(p + ".decoder_start_token_id").value_or(out.pad_id.value_or(0));
  out.max_pos = 1 << 20;
  return Status();
}

std::vector<std::string> required(const ModelConfig& c) {
  std::vector<std::string> r = {"shared.weight", "encoder.final_layer_norm.weight", "decoder.final_layer_norm.weight",
                                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"};
  const std::vector<const char*> ffn = c.gated_ffn ? std::vector<const char*>{"wi_0.weight", "wi_1.weight", "wo.weight"}
                                                   : std::vector<const char*>{"wi.weight", "wo.weight"};
  auto add = [&](const char* stack, int64_t l, const char* sub, const char* kind) {
    for (const char* w : {"q.weight", "k.weight", "v.weight", "o.weight"})
      r.push_back(blk(stack, l, (std::string(sub) + "." + kind + "." + w).c_str()));
    r.push_back(blk(stack, l, (std::string(sub) + ".layer_norm.weight").c_str()));
  };
  auto add_ffn = [&](const char* stack, int64_t l, const char* sub) {
    for (const char* w : ffn) r.push_back(blk(stack, l, (std::string(sub) + ".DenseReluDense." + w).c_str()));
    r.push_back(blk(stack, l, (std::string(sub) + ".layer_norm.weight").c_str()));
  };
  const int64_t dl = c.n_decoder_layers > 0 ? c.n_decoder_layers : c.n_layers;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    add("encoder", l, "layer.0", "SelfAttention");
    add_ffn("encoder", l, "layer.1");
  }
  for (int64_t l = 0; l < dl; ++l) {
    add("decoder", l, "layer.0", "SelfAttention");
    add("decoder", l, "layer.1", "EncDecAttention");
    add_ffn("decoder", l, "layer.2");
  }
  if (!c.tie_embeddings) r.push_back("lm_head.weight");
  return r;
}

}  // namespace

const ArchSpec& t5_arch() {
  static const ArchSpec kSpec{
      "t5",
      {"T5ForConditionalGeneration", "MT5ForConditionalGeneration"},
      {"t5"},
      read_hf,
      read_gguf,
      {
          {"token_embd.weight", "shared.weight"},
          {"output.weight", "lm_head.weight"},
          {"enc.output_norm.weight", "encoder.final_layer_norm.weight"},
          {"dec.output_norm.weight", "decoder.final_layer_norm.weight"},
          {"enc.blk.{}.attn_rel_b.weight", "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"},
          {"enc.blk.{}.attn_norm.weight", "encoder.block.{}.layer.0.layer_norm.weight"},
          {"enc.blk.{}.attn_q.weight", "encoder.block.{}.layer.0.SelfAttention.q.weight"},
          {"enc.blk.{}.attn_k.weight", "encoder.block.{}.layer.0.SelfAttention.k.weight"},
          {"enc.blk.{}.attn_v.weight", "encoder.block.{}.layer.0.SelfAttention.v.weight"},
          {"enc.blk.{}.attn_o.weight", "encoder.block.{}.layer.0.SelfAttention.o.weight"},
          {"enc.blk.{}.ffn_norm.weight", "encoder.block.{}.layer.1.layer_norm.weight"},
          {"enc.blk.{}.ffn_gate.weight", "encoder.block.{}.layer.1.DenseReluDense.wi_0.weight"},
          {"enc.blk.{}.ffn_up.weight", "encoder.block.{}.layer.1.DenseReluDense.wi_1.weight"},
          {"enc.blk.{}.ffn_down.weight", "encoder.block.{}.layer.1.DenseReluDense.wo.weight"},
          {"dec.blk.{}.attn_rel_b.weight", "decoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"},
          {"dec.blk.{}.attn_norm.weight", "decoder.block.{}.layer.0.layer_norm.weight"},
          {"dec.blk.{}.attn_q.weight", "decoder.block.{}.layer.0.SelfAttention.q.weight"},
          {"dec.blk.{}.attn_k.weight", "decoder.block.{}.layer.0.SelfAttention.k.weight"},
          {"dec.blk.{}.attn_v.weight", "decoder.block.{}.layer.0.SelfAttention.v.weight"},
          {"dec.blk.{}.attn_o.weight", "decoder.block.{}.layer.0.SelfAttention.o.weight"},
          {"dec.blk.{}.cross_attn_norm.weight", "decoder.block.{}.layer.1.layer_norm.weight"},
          {"dec.blk.{}.cross_attn_q.weight", "decoder.block.{}.layer.1.EncDecAttention.q.weight"},
          {"dec.blk.{}.cross_attn_k.weight", "decoder.block.{}.layer.1.EncDecAttention.k.weight"},
          {"dec.blk.{}.cross_attn_v.weight", "decoder.block.{}.layer.1.EncDecAttention.v.weight"},
          {"dec.blk.{}.cross_attn_o.weight", "decoder.block.{}.layer.1.EncDecAttention.o.weight"},
          {"dec.blk.{}.ffn_norm.weight", "decoder.block.{}.layer.2.layer_norm.weight"},
          {"dec.blk.{}.ffn_gate.weight", "decoder.block.{}.layer.2.DenseReluDense.wi_0.weight"},
          {"dec.blk.{}.ffn_up.weight", "decoder.block.{}.layer.2.DenseReluDense.wi_1.weight"},
          {"dec.blk.{}.ffn_down.weight", "decoder.block.{}.layer.2.DenseReluDense.wo.weight"},
      },
      required,
      create_t5,
      "shared.weight",
      normalize_hf,
  };
  return kSpec;
}

}  // namespace ballast::model
