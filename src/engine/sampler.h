// The engine's view of the logits chain (backend/logits_chain.h): one request's sampling
// state (params, seed, step count) applied to host logits. The engine itself hands rows
// to the backend, which runs the same chain where the logits are; this wrapper serves
// tools and unit tests.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/logits_chain.h"
#include "core/status.h"

namespace ballast::engine {

using backend::SampleResult;
using backend::SamplingParams;

class Sampler {
 public:
  // valid: one flag per logit row; rows with 0 (padding, unembeddable) never come out.
  // Without a seed in params, one is drawn at random.
  Sampler(SamplingParams params, std::shared_ptr<const std::vector<uint8_t>> valid);

  // logits: (rows,) of one sequence; modified in place. prompt/generated feed penalties.
  // Fails with kNumericalError when a valid row's logit is NaN/Inf.
  Result<SampleResult> sample(std::span<float> logits, std::span<const int32_t> prompt,
                              std::span<const int32_t> generated);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::shared_ptr<const std::vector<uint8_t>> valid_;
  uint64_t seed_ = 0, step_ = 0;
};

}  // namespace ballast::engine
