// Reading the fields every architecture shares from config.json / generation_config.json
// and from GGUF metadata. Errors name the file and field.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/config.h"

namespace ballast::io { class GgufFile; }

namespace ballast::model {

// Typed field access with clear errors ("config.json: field 'hidden_size' ...").
Result<int64_t> json_int(const nlohmann::json& j, const char* key, const std::string& file,
                         std::optional<int64_t> def = std::nullopt);
Result<double> json_num(const nlohmann::json& j, const char* key, const std::string& file,
                        std::optional<double> def = std::nullopt);

// Common transformer fields (sizes, eps, rope, ids) from config.json.
Status read_hf_common(const nlohmann::json& cfg, const std::string& file, ModelConfig& out);
// Rope from `rope_theta`/`rope_scaling` (older) or `rope_parameters` (newer; may be keyed by
// layer type). layer_type: "full_attention" / "sliding_attention" or "" for flat forms.
Status read_hf_rope(const nlohmann::json& cfg, const std::string& file, const std::string& layer_type,
                    double default_theta, RopeParams& out);
// generation_config.json: sampling defaults and eos/bos/pad.
Status read_generation_config(const nlohmann::json& gen, const std::string& file, ModelConfig& out);
// Common GGUF fields: "<arch>.block_count", ... Missing required keys are errors.
Status read_gguf_common(const io::GgufFile& f, const std::string& prefix, ModelConfig& out);

}  // namespace ballast::model
