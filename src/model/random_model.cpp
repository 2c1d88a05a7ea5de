// Random-weight models with exact Hugging Face shapes (see random_model.h).
#include "model/random_model.h"

#include <cmath>
#include <cstring>
#include <random>

#include "model/registry.h"

namespace ballast::model {

namespace {

ModelConfig llama_like(const char* src, int64_t H, int64_t L, int64_t nh, int64_t nkv, int64_t ffn, int64_t vocab,
                       double theta, bool tie, double eps, int64_t max_pos) {
  ModelConfig c;
  c.arch = "llama";
  c.source_arch = src;
  c.vocab_size = vocab;
  c.hidden = H;
  c.n_layers = L;
  c.n_heads = nh;
  c.n_kv_heads = nkv;
  c.head_dim = H / nh;
  c.ffn = ffn;
  c.max_pos = max_pos;
  c.rms_eps = eps;
  c.rope.theta = theta;
  c.tie_embeddings = tie;
  c.eos_ids = {2};
  c.bos_id = 1;
  c.dtype_name = "bfloat16";
  return c;
}

std::vector<RandomPreset> presets() {
  std::vector<RandomPreset> v;
  {
    auto c = llama_like("LlamaForCausalLM", 2048, 16, 32, 8, 8192, 128256, 500000.0, true, 1e-5, 131072);
    c.rope.scaling = RopeScaling::kLlama3;
    c.rope.factor = 32.0;
    c.rope.low_freq_factor = 1.0;
    c.rope.high_freq_factor = 4.0;
    c.rope.original_max_pos = 8192;
    v.push_back({"llama-3.2-1b", c, 128256});
  }
  v.push_back({"llama-2-7b", llama_like("LlamaForCausalLM", 4096, 32, 32, 32, 11008, 32000, 10000.0, false, 1e-5, 4096), 32000});
  v.push_back({"smollm2-135m", llama_like("LlamaForCausalLM", 576, 30, 9, 3, 1536, 49152, 100000.0, true, 1e-5, 8192), 49152});
  {
    ModelConfig c;
    c.arch = "gemma3";
    c.source_arch = "Gemma3ForCausalLM";
    c.vocab_size = 262144;
    c.hidden = 1152;
    c.n_layers = 26;
    c.n_heads = 4;
    c.n_kv_heads = 1;
    c.head_dim = 256;
    c.ffn = 6912;
    c.max_pos = 32768;
    c.rms_eps = 1e-6;
    c.rope.theta = 1000000.0;
    c.rope_local.theta = 10000.0;
    c.act = Activation::kGeluTanh;
    c.tie_embeddings = true;
    c.qk_norm = true;
    c.norm_offset = 1.0;
    c.embed_scale = std::sqrt(1152.0);
    c.attn_scale = 1.0 / 16.0;  // query_pre_attn_scalar 256
    c.sliding_window = 512;
    c.layer_sliding.resize(26);
    for (int l = 0; l < 26; ++l) c.layer_sliding[l] = (l + 1) % 6 != 0;
    c.eos_ids = {1};
    c.bos_id = 2;
    c.dtype_name = "bfloat16";
    v.push_back({"gemma-3-1b", c, 262144});
  }
  return v;
}

}  // namespace

bool is_random_model_path(const std::string& path) { return path.rfind("random:", 0) == 0; }

std::vector<std::string> random_preset_names() {
  std::vector<std::string> n;
  for (const auto& p : presets()) n.push_back(p.name);
  return n;
}

Result<RandomPreset> random_preset(const std::string& path) {
  const std::string name = path.substr(path.find(':') + 1);
  for (auto& p : presets())
    if (p.name == name) {
      // Stop id: the last row (a filler piece), so byte pieces never end generation.
      p.cfg.eos_ids = {p.rows - 1};
      p.cfg.bos_id.reset();
      return p;
    }
  std::string known;
  for (const auto& n : random_preset_names()) known += (known.empty() ? "" : ", ") + n;
  return error(ErrorCode::kNotFound, "--model " + path + ": unknown random preset '" + name + "' (known: " + known + ")");
}

Result<LoadedModel> load_random(const RandomPreset& p) {
  const ArchSpec* spec = nullptr;
  for (const ArchSpec* s : registry())
    if (s->key == p.cfg.arch) spec = s;
  if (!spec) return error(ErrorCode::kInternal, "random preset: architecture '" + p.cfg.arch + "' not registered");
  LoadedModel lm;
  lm.path = "random:" + p.name;
  lm.arch_key = p.cfg.arch;
  lm.model = spec->create(p.cfg);
  return lm;
}

nlohmann::json random_tokenizer_json(int64_t rows) {
  nlohmann::json vocab = nlohmann::json::object();
  char buf[32];
  for (int64_t i = 0; i < rows; ++i) {
    if (i < 256) std::snprintf(buf, sizeof buf, "<0x%02X>", static_cast<unsigned>(i));
    else std::snprintf(buf, sizeof buf, "<tok%lld>", static_cast<long long>(i));
    vocab[buf] = i;
  }
  return nlohmann::json{
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteFallback"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}, {"byte_fallback", true},
                 {"unk_token", nullptr}, {"dropout", nullptr}, {"fuse_unk", false}}},
  };
}

}  // namespace ballast::model
