// `--model random:PRESET`: the exact shapes of a known model with random weights, so
// speed can be measured with no download. Weights are generated on the device for
// --device cuda, on the host (bf16) for the CPU path. The tokenizer is synthetic:
// byte-fallback pieces <0x00>..<0xFF> at ids 0..255, filler pieces for every other row.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/config.h"
#include "model/loader.h"

namespace ballast::model {

struct RandomPreset {
  std::string name;
  ModelConfig cfg;
  int64_t rows = 0;  // embedding rows (= vocab_size)
};

bool is_random_model_path(const std::string& path);
// "random:llama-3.2-1b" -> preset; error lists the known presets.
Result<RandomPreset> random_preset(const std::string& path);
std::vector<std::string> random_preset_names();
// The preset's model, unbound: bind it with a random-mode Binder (weights are made by
// the backend: on the device for CUDA).
Result<LoadedModel> load_random(const RandomPreset& p);
// tokenizer.json content for a random model of `rows` rows.
nlohmann::json random_tokenizer_json(int64_t rows);

}  // namespace ballast::model
