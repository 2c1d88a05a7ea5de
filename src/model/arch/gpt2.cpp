// GPT-2 (DialoGPT): learned absolute positions, LayerNorm with bias before each sublayer,
// fused q|k|v (c_attn), GELU (tanh) MLP, biases everywhere, tied head. Hugging Face stores
// the linears as Conv1D (in, out): the binder transposes them at load; GGUF stores (out, in).
#include "io/gguf.h"
#include "model/hf_config.h"
#include "model/layers/layers.h"
#include "model/registry.h"

namespace ballast::model {
namespace {

std::string h_name(int64_t l, const char* suffix) { return "transformer.h." + std::to_string(l) + "." + suffix; }

struct Gpt2Layer {
  backend::WeightId ln1_w, ln1_b, qkv, qkv_b, o, o_b, ln2_w, ln2_b, fc, fc_b, proj, proj_b;
};

class Gpt2Model : public DecoderModel {
 public:
  using DecoderModel::DecoderModel;

  Status bind(Binder& b) override {
    const auto& c = cfg_;
    const int64_t H = c.hidden, F = c.ffn;
    const bool t = !b.conv1d_stored_out_in();  // HF Conv1D: (in, out)
    BALLAST_RETURN_IF_ERROR(bind_embeddings(b, "transformer.wte.weight", "lm_head.weight"));
    BALLAST_ASSIGN_OR_RETURN(wpe_, b.matrix("transformer.wpe.weight", c.max_pos, H));
    BALLAST_ASSIGN_OR_RETURN(lnf_w_, b.vector("transformer.ln_f.weight", H));
    BALLAST_ASSIGN_OR_RETURN(lnf_b_, b.vector("transformer.ln_f.bias", H, 0.f, 0.f));
    layers_.resize(c.n_layers);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      auto& ly = layers_[l];
      BALLAST_ASSIGN_OR_RETURN(ly.ln1_w, b.vector(h_name(l, "ln_1.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln1_b, b.vector(h_name(l, "ln_1.bias"), H, 0.f, 0.f));
      BALLAST_ASSIGN_OR_RETURN(ly.qkv, b.matrix({{h_name(l, "attn.c_attn.weight"), 3 * H, t}}, H));
      BALLAST_ASSIGN_OR_RETURN(ly.qkv_b, b.vector(h_name(l, "attn.c_attn.bias"), 3 * H, 0.f, 0.f));
      BALLAST_ASSIGN_OR_RETURN(ly.o, b.matrix({{h_name(l, "attn.c_proj.weight"), H, t}}, H));
      BALLAST_ASSIGN_OR_RETURN(ly.o_b, b.vector(h_name(l, "attn.c_proj.bias"), H, 0.f, 0.f));
      BALLAST_ASSIGN_OR_RETURN(ly.ln2_w, b.vector(h_name(l, "ln_2.weight"), H));
      BALLAST_ASSIGN_OR_RETURN(ly.ln2_b, b.vector(h_name(l, "ln_2.bias"), H, 0.f, 0.f));
      BALLAST_ASSIGN_OR_RETURN(ly.fc, b.matrix({{h_name(l, "mlp.c_fc.weight"), F, t}}, H));
      BALLAST_ASSIGN_OR_RETURN(ly.fc_b, b.vector(h_name(l, "mlp.c_fc.bias"), F, 0.f, 0.f));
      BALLAST_ASSIGN_OR_RETURN(ly.proj, b.matrix({{h_name(l, "mlp.c_proj.weight"), H, t}}, F));
      BALLAST_ASSIGN_OR_RETURN(ly.proj_b, b.vector(h_name(l, "mlp.c_proj.bias"), H, 0.f, 0.f));
    }
    return Status();
  }

  Status forward(backend::Ops& o) const override {
    const auto& c = cfg_;
    const float eps = static_cast<float>(c.rms_eps);
    auto ln = [&](backend::WeightId w, backend::WeightId b) { return backend::Norm{backend::NormKind::kLayer, w, b, eps}; };
    backend::AttentionSpec as;
    as.n_heads = as.n_kv_heads = static_cast<int>(c.n_heads);
    as.head_dim = static_cast<int>(c.head_dim);
    backend::Tensor x = o.embed(emb_, 1.0f);  // (n, H) residual stream
    o.add(x, o.embed_positions(wpe_));
    for (int64_t l = 0; l < c.n_layers; ++l) {
      backend::Ops::Scope scope(o);
      const auto& ly = layers_[l];
      as.layer = static_cast<int>(l);
      backend::Tensor qkv = o.linear(o.norm(x, ln(ly.ln1_w, ly.ln1_b)), ly.qkv, ly.qkv_b);  // (n, 3H)
      o.linear_add(o.attention(qkv, as), ly.o, x, ly.o_b);
      backend::Tensor h = o.activation(o.linear(o.norm(x, ln(ly.ln2_w, ly.ln2_b)), ly.fc, ly.fc_b), act_);
      o.linear_add(h, ly.proj, x, ly.proj_b);
      o.check(x, l);
    }
    o.logits(x, ln(lnf_w_, lnf_b_), head_, 0.f);
    return o.status();
  }

 private:
  backend::Act act_ = backend::Act::kGeluTanh;
  backend::WeightId wpe_ = backend::kNoWeight, lnf_w_ = backend::kNoWeight, lnf_b_ = backend::kNoWeight;
  std::vector<Gpt2Layer> layers_;

  friend std::unique_ptr<Model> create_gpt2(ModelConfig cfg);
};

std::unique_ptr<Model> create_gpt2(ModelConfig cfg) {
  auto m = std::make_unique<Gpt2Model>(std::move(cfg));
  if (m->config().act == Activation::kGeluErf) m->act_ = backend::Act::kGeluErf;
  return m;
}

// GPT-2's config.json names (n_embd, ...) as the common reader expects them.
void normalize_hf(nlohmann::json& cfg) {
  for (auto [from, to] : {std::pair{"n_embd", "hidden_size"}, {"n_layer", "num_hidden_layers"},
                          {"n_head", "num_attention_heads"}, {"n_positions", "max_position_embeddings"},
                          {"layer_norm_epsilon", "rms_norm_eps"}})
    if (cfg.contains(from) && !cfg.contains(to)) cfg[to] = cfg[from];
  if (!cfg.contains("intermediate_size"))
    cfg["intermediate_size"] = cfg.contains("n_inner") && cfg["n_inner"].is_number_integer()
                                   ? cfg["n_inner"].get<int64_t>()
                                   : 4 * cfg.value("hidden_size", int64_t{0});
  if (!cfg.contains("tie_word_embeddings")) cfg["tie_word_embeddings"] = true;
}

Status read_hf(const nlohmann::json& cfg, ModelConfig& out) {
  const std::string file = "config.json";
  out.chat_turns_by_eos = true;  // DialoGPT: turns end with <|endoftext|>
  const std::string act = cfg.value("activation_function", std::string("gelu_new"));
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") out.act = Activation::kGeluTanh;
  else if (act == "gelu") out.act = Activation::kGeluErf;
  else return error(ErrorCode::kUnsupported, file + ": field 'activation_function' = '" + act + "' (gelu_new, gelu)");
  for (const char* k : {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"})
    if (cfg.value(k, false)) return error(ErrorCode::kUnsupported, file + ": field '" + std::string(k) + "' = true");
  if (cfg.contains("scale_attn_weights") && cfg["scale_attn_weights"] == false)
    return error(ErrorCode::kUnsupported, file + ": field 'scale_attn_weights' = false");
  return Status();
}

Status read_gguf(const io::GgufFile& f, const std::string& p, ModelConfig& out) {
  out.rms_eps = f.get_float(p + ".attention.layer_norm_epsilon").value_or(1e-5);
  out.act = Activation::kGeluTanh;
  out.chat_turns_by_eos = true;
  out.tie_embeddings = f.tensor("output.weight") == nullptr;
  return Status();
}

std::vector<std::string> required(const ModelConfig& c) {
  std::vector<std::string> r = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
                                "transformer.ln_f.bias"};
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const char* s : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                          "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                          "mlp.c_proj.weight", "mlp.c_proj.bias"})
      r.push_back(h_name(l, s));
  return r;
}

}  // namespace

const ArchSpec& gpt2_arch() {
  static const ArchSpec kSpec{
      "gpt2",
      {"GPT2LMHeadModel"},
      {"gpt2"},
      read_hf,
      read_gguf,
      {
          {"token_embd.weight", "transformer.wte.weight"},
          {"position_embd.weight", "transformer.wpe.weight"},
          {"output_norm.weight", "transformer.ln_f.weight"},
          {"output_norm.bias", "transformer.ln_f.bias"},
          {"output.weight", "lm_head.weight"},
          {"blk.{}.attn_norm.weight", "transformer.h.{}.ln_1.weight"},
          {"blk.{}.attn_norm.bias", "transformer.h.{}.ln_1.bias"},
          {"blk.{}.attn_qkv.weight", "transformer.h.{}.attn.c_attn.weight"},
          {"blk.{}.attn_qkv.bias", "transformer.h.{}.attn.c_attn.bias"},
          {"blk.{}.attn_output.weight", "transformer.h.{}.attn.c_proj.weight"},
          {"blk.{}.attn_output.bias", "transformer.h.{}.attn.c_proj.bias"},
          {"blk.{}.ffn_norm.weight", "transformer.h.{}.ln_2.weight"},
          {"blk.{}.ffn_norm.bias", "transformer.h.{}.ln_2.bias"},
          {"blk.{}.ffn_up.weight", "transformer.h.{}.mlp.c_fc.weight"},
          {"blk.{}.ffn_up.bias", "transformer.h.{}.mlp.c_fc.bias"},
          {"blk.{}.ffn_down.weight", "transformer.h.{}.mlp.c_proj.weight"},
          {"blk.{}.ffn_down.bias", "transformer.h.{}.mlp.c_proj.bias"},
      },
      required,
      create_gpt2,
      "transformer.wte.weight",
      normalize_hf,
  };
  return kSpec;
}

}  // namespace ballast::model
