// Sampler chain: vocabulary mask -> logit_bias -> penalties -> temperature -> top-k ->
// top-p -> min-p -> draw. Pure CPU, no model: unit-tested on crafted logits.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ballast::engine {

struct SamplingParams {
  double temperature = 1.0;      // 0 = greedy
  int64_t top_k = 0;             // 0 = off
  double top_p = 1.0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;  // HF style, over prompt + generated ids
  double presence_penalty = 0.0;    // OpenAI style, over generated ids
  double frequency_penalty = 0.0;
  std::optional<uint64_t> seed;
  std::map<int32_t, float> logit_bias;  // ids validated by the caller
  int top_logprobs = 0;
};

struct SampleResult {
  int32_t id = -1;
  float logprob = 0;  // of the chosen id under the masked model distribution
  std::vector<std::pair<int32_t, float>> top;  // top_logprobs, most likely first
};

class Sampler {
 public:
  // valid: one flag per logit row; rows with 0 (padding, unembeddable) never come out.
  Sampler(SamplingParams params, std::shared_ptr<const std::vector<uint8_t>> valid);

  // logits: (rows,) of one sequence; modified in place. prompt/generated feed penalties.
  // Fails with kNumericalError when a valid row's logit is NaN/Inf.
  Result<SampleResult> sample(std::span<float> logits, std::span<const int32_t> prompt,
                              std::span<const int32_t> generated);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::shared_ptr<const std::vector<uint8_t>> valid_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch
  std::vector<float> base_;                       // scratch: masked logits
};

}  // namespace ballast::engine
