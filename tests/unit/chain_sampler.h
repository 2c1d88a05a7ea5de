// Tests' handle on the logits chain: one request's params, vocabulary mask, seed and step
// count around backend::run_chain (what the engine does per row, without a model).
#pragma once
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "backend/logits_chain.h"

namespace ballast::test {

class ChainSampler {
 public:
  // Without a seed in params, one is drawn at random.
  ChainSampler(backend::SamplingParams params, std::shared_ptr<const std::vector<uint8_t>> valid)
      : params_(std::move(params)), valid_(std::move(valid)) {
    seed_ = params_.seed ? *params_.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  // logits: (rows,) modified in place; each call is the next generation step.
  Result<backend::SampleResult> sample(std::span<float> logits, std::span<const int32_t> prompt,
                                       std::span<const int32_t> generated) {
    backend::SampleRow row;
    row.params = &params_;
    row.prompt = prompt;
    row.generated = generated;
    row.seed = seed_;
    row.step = step_++;
    return backend::run_chain(logits, valid_.get(), row);
  }
  const backend::SamplingParams& params() const { return params_; }

 private:
  backend::SamplingParams params_;
  std::shared_ptr<const std::vector<uint8_t>> valid_;
  uint64_t seed_ = 0, step_ = 0;
};

}  // namespace ballast::test
