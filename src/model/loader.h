// Model loading: an HF directory (config.json + safetensors or PyTorch .bin) or a .gguf file becomes a
// ModelConfig + WeightSet bound to HF names, then the registered architecture.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/model.h"
#include "model/weights.h"

namespace ballast::io { class GgufFile; }

namespace ballast::model {

struct LoadedModel {
  std::unique_ptr<Model> model;          // created at load; bound by bind_model
  std::shared_ptr<WeightSet> weights;     // by HF name (null for random presets)
  std::string path;
  bool is_gguf = false;
  std::shared_ptr<io::GgufFile> gguf;     // set for GGUF files (tokenizer, metadata)
  nlohmann::json hf_config;               // config.json (HF dirs)
  nlohmann::json generation_config;       // generation_config.json or null
  std::string arch_key;
};

// Reads a JSON file; errors name the file.
Result<nlohmann::json> read_json_file(const std::string& path);

// Reads config and maps weights; the model is created but not yet bound to a backend.
Result<LoadedModel> load_model(const std::string& path);
// Uploads the weights onto `be` through the architecture's bind() and attaches it.
Status bind_model(LoadedModel& lm, std::shared_ptr<backend::Backend> be);

// Maps a GGUF tensor name onto an HF name with an architecture's binding table;
// empty when no binding matches.
struct ArchSpec;
std::string bind_gguf_name(const ArchSpec& spec, const std::string& gguf_name);

}  // namespace ballast::model
