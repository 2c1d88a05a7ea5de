// Sampler: a request's seed and step count around backend::run_chain.
#include "engine/sampler.h"

#include <random>

namespace ballast::engine {

Sampler::Sampler(SamplingParams params, std::shared_ptr<const std::vector<uint8_t>> valid)
    : params_(std::move(params)), valid_(std::move(valid)) {
  seed_ = params_.seed ? *params_.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
}

Result<SampleResult> Sampler::sample(std::span<float> logits, std::span<const int32_t> prompt,
                                     std::span<const int32_t> generated) {
  backend::SampleRow row;
  row.params = &params_;
  row.prompt = prompt;
  row.generated = generated;
  row.seed = seed_;
  row.step = step_++;
  return backend::run_chain(logits, valid_.get(), row);
}

}  // namespace ballast::engine
