// Model loading from HF directories and GGUF files.
#include "model/loader.h"

#include "model/binder.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/torch_bin.h"
#include "model/hf_config.h"
#include "model/registry.h"

namespace ballast::model {

namespace fs = std::filesystem;
using nlohmann::json;

Result<json> read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return error(ErrorCode::kIoError, path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormatError, path + ": invalid JSON: " + e.what());
  }
}

std::string bind_gguf_name(const ArchSpec& spec, const std::string& name) {
  for (const auto& b : spec.gguf_bindings) {
    std::string pat = b.gguf;
    auto brace = pat.find("{}");
    if (brace == std::string::npos) {
      if (pat == name) return b.hf;
      continue;
    }
    const std::string pre = pat.substr(0, brace), post = pat.substr(brace + 2);
    if (name.size() <= pre.size() + post.size() || name.compare(0, pre.size(), pre) != 0 ||
        name.compare(name.size() - post.size(), post.size(), post) != 0)
      continue;
    std::string idx = name.substr(pre.size(), name.size() - pre.size() - post.size());
    if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string hf = b.hf;
    hf.replace(hf.find("{}"), 2, idx);
    return hf;
  }
  return "";
}

// `unloadable`: tensors the file holds in a dtype ballast does not load (name -> "dtype in file").
static Status check_required(const ArchSpec& spec, const ModelConfig& cfg, const WeightSet& ws,
                             const std::map<std::string, std::string>& unloadable = {}) {
  for (const auto& name : spec.required_tensors(cfg)) {
    if (ws.find(name)) continue;
    if (auto u = unloadable.find(name); u != unloadable.end())
      return error(ErrorCode::kUnsupported, ws.origin + ": tensor '" + name + "' required by " + cfg.source_arch +
                                                " is " + u->second + " (supported: float32, float16, bfloat16)");
    return error(ErrorCode::kNotFound, ws.origin + ": tensor '" + name + "' required by " +
                                           cfg.source_arch + " is missing");
  }
  return Status();
}

// An HF directory's weights: safetensors when present, else PyTorch .bin (zip or legacy).
static Result<std::shared_ptr<WeightSet>> open_hf_weights(const std::string& dir,
                                                          std::map<std::string, std::string>& unloadable) {
  auto ws = std::make_shared<WeightSet>();
  ws->origin = dir;
  auto add_all = [&](const auto& set) {
    for (const auto& [name, t] : set->tensors()) {
      Weight w;
      w.name = w.stored_as = name;
      w.dtype = t.dtype;
      for (auto d : t.shape) w.shape.push_back(static_cast<int64_t>(d));
      w.data = t.data;
      ws->add(std::move(w));
    }
    ws->keep(set);
  };
  const fs::path d(dir);
  const bool st = fs::exists(d / "model.safetensors") || fs::exists(d / "model.safetensors.index.json");
  if (!st && (fs::exists(d / "pytorch_model.bin") || fs::exists(d / "pytorch_model.bin.index.json"))) {
    BALLAST_ASSIGN_OR_RETURN(auto tb, io::TorchBinSet::open_dir(dir));
    add_all(tb);
    unloadable = tb->unsupported();
    return ws;
  }
  if (!st)
    return error(ErrorCode::kNotFound, dir + ": no model.safetensors, model.safetensors.index.json, "
                                             "pytorch_model.bin or pytorch_model.bin.index.json");
  BALLAST_ASSIGN_OR_RETURN(auto sts, io::SafetensorsSet::open_dir(dir));
  add_all(sts);
  return ws;
}

static Result<LoadedModel> load_hf_dir(const std::string& dir) {
  LoadedModel lm;
  lm.path = dir;
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  BALLAST_ASSIGN_OR_RETURN(lm.hf_config, read_json_file(cfg_path));
  const json& cfg = lm.hf_config;
  if (!cfg.contains("architectures") || !cfg["architectures"].is_array() || cfg["architectures"].empty() ||
      !cfg["architectures"][0].is_string())
    return error(ErrorCode::kFormatError, cfg_path + ": field 'architectures' missing");
  const std::string arch = cfg["architectures"][0];
  const ArchSpec* spec = find_arch_hf(arch);
  if (!spec) {
    std::string known;
    for (auto* a : registry())
      for (auto& n : a->hf_names) known += (known.empty() ? "" : ", ") + n;
    return error(ErrorCode::kUnsupported, cfg_path + ": field 'architectures': '" + arch +
                                              "' is not supported (supported: " + known + ")");
  }
  ModelConfig mc;
  mc.arch = spec->key;
  mc.source_arch = arch;
  auto with_file = [&](Status s) {
    if (s.ok() || s.message().rfind("config.json", 0) != 0) return s;
    return Status(s.code(), fs::path(dir).string() + "/" + s.message());
  };
  json norm_cfg = cfg;
  if (spec->normalize_hf_config) spec->normalize_hf_config(norm_cfg);
  BALLAST_RETURN_IF_ERROR(with_file(read_hf_common(norm_cfg, "config.json", mc)));
  BALLAST_RETURN_IF_ERROR(with_file(spec->read_hf_config(norm_cfg, mc)));
  const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
  if (fs::exists(gen_path)) {
    BALLAST_ASSIGN_OR_RETURN(lm.generation_config, read_json_file(gen_path));
    BALLAST_RETURN_IF_ERROR(read_generation_config(lm.generation_config, gen_path, mc));
  }
  std::map<std::string, std::string> unloadable;
  BALLAST_ASSIGN_OR_RETURN(auto ws, open_hf_weights(dir, unloadable));
  BALLAST_RETURN_IF_ERROR(check_required(*spec, mc, *ws, unloadable));
  lm.arch_key = spec->key;
  lm.weights = ws;
  lm.model = spec->create(std::move(mc));
  return lm;
}

static Result<LoadedModel> load_gguf(const std::string& path) {
  LoadedModel lm;
  lm.path = path;
  lm.is_gguf = true;
  BALLAST_ASSIGN_OR_RETURN(lm.gguf, io::GgufFile::open(path));
  const auto& g = *lm.gguf;
  const std::string arch = g.architecture();
  if (arch.empty())
    return error(ErrorCode::kFormatError, path + ": GGUF field 'general.architecture' missing");
  const ArchSpec* spec = find_arch_gguf(arch);
  if (!spec)
    return error(ErrorCode::kUnsupported, path + ": GGUF field 'general.architecture': '" + arch + "' is not supported");
  ModelConfig mc;
  mc.arch = spec->key;
  mc.source_arch = arch;
  BALLAST_RETURN_IF_ERROR(read_gguf_common(g, arch, mc));
  BALLAST_RETURN_IF_ERROR(spec->read_gguf_config(g, arch, mc));
  auto ws = std::make_shared<WeightSet>();
  ws->origin = path;
  for (const auto& t : g.tensors()) {
    std::string hf = bind_gguf_name(*spec, t.name);
    if (hf.empty()) continue;  // tensors we do not use (e.g. vision towers)
    Weight w;
    w.name = hf;
    w.stored_as = t.name;
    w.dtype = t.dtype;
    for (auto it = t.dims.rbegin(); it != t.dims.rend(); ++it) w.shape.push_back(static_cast<int64_t>(*it));
    w.data = t.data;
    ws->add(std::move(w));
  }
  ws->keep(lm.gguf);
  ws->gguf = true;
  if (mc.vocab_size == 0)
    if (const Weight* e = ws->find(spec->embedding_tensor); e && !e->shape.empty()) mc.vocab_size = e->shape[0];
  BALLAST_RETURN_IF_ERROR(check_required(*spec, mc, *ws));
  lm.arch_key = spec->key;
  lm.weights = ws;
  lm.model = spec->create(std::move(mc));
  return lm;
}

Result<LoadedModel> load_model(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return load_hf_dir(path);
  if (!fs::exists(path, ec)) return error(ErrorCode::kNotFound, path + ": no such file or directory");
  return load_gguf(path);
}

}  // namespace ballast::model

namespace ballast::model {

Status bind_model(LoadedModel& lm, std::shared_ptr<backend::Backend> be) {
  Binder b(lm.weights, *be);
  BALLAST_RETURN_IF_ERROR(lm.model->bind(b));
  lm.model->set_backend(std::move(be));
  return Status();
}

}  // namespace ballast::model
