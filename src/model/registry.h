// Architecture registry: HF `architectures` names and GGUF `general.architecture`
// values map to one implementation each. Adding an architecture = one arch file that
// defines an ArchSpec + one line in registry.cpp.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/config.h"
#include "model/model.h"
#include "model/weights.h"

namespace ballast::io { class GgufFile; }

namespace ballast::model {

struct GgufBinding {
  const char* gguf;  // GGUF name with {} for the block index, e.g. "blk.{}.attn_q.weight"
  const char* hf;    // HF name with {} for the layer index
};

struct ArchSpec {
  std::string key;                        // implementation name: "llama", "gemma3"
  std::vector<std::string> hf_names;      // config.json architectures entries
  std::vector<std::string> gguf_names;    // general.architecture values
  // Fills arch-specific fields after the common ones were read.
  Status (*read_hf_config)(const nlohmann::json& cfg, ModelConfig& out);
  Status (*read_gguf_config)(const io::GgufFile& f, const std::string& prefix, ModelConfig& out);
  std::vector<GgufBinding> gguf_bindings;
  // Names of every tensor the config requires (used for completeness tests and errors).
  std::vector<std::string> (*required_tensors)(const ModelConfig& cfg);
  std::unique_ptr<Model> (*create)(ModelConfig cfg);  // unbound; Model::bind uploads
  const char* embedding_tensor = "model.embed_tokens.weight";  // HF name (GGUF vocab size from its rows)
  // Renames/defaults config.json fields into the common names before they are read (GPT-2's n_embd, ...).
  void (*normalize_hf_config)(nlohmann::json& cfg) = nullptr;
};

const std::vector<const ArchSpec*>& registry();
const ArchSpec* find_arch_hf(const std::string& hf_name);
const ArchSpec* find_arch_gguf(const std::string& gguf_arch);

// Arch specs, defined in arch/*.cpp.
const ArchSpec& llama_arch();
const ArchSpec& gemma3_arch();
const ArchSpec& gpt2_arch();
const ArchSpec& phi3_arch();
const ArchSpec& t5_arch();

}  // namespace ballast::model
