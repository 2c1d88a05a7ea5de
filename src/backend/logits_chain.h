// The one logits-processor chain, defined once and run where the logits are (CPU code in
// backend/cpu/logits_chain.cpp, CUDA kernels in backend/cuda/sample.cu):
//   vocabulary mask (+ non-finite check on valid ids) -> log-softmax of the masked logits
//   (the reported logprob and top-N come from it) -> logit_bias -> repetition penalty ->
//   presence/frequency penalties -> [token-mask slot: grammar / structured output] ->
//   temperature (0: argmax, ties to the lowest id) -> top-k -> top-p -> min-p ->
//   seeded draw (a counter-based hash of (seed, step), the same on every backend).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ballast::backend {

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

// One logits row's request.
struct SampleRow {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt;     // penalty context
  std::span<const int32_t> generated;
  const std::vector<uint8_t>* token_mask = nullptr;  // grammar slot: 0 = banned (null: none)
  uint64_t seed = 0;  // per request (the request's seed, or one drawn at submit)
  uint64_t step = 0;  // tokens generated so far
};

// The uniform in [0, 1) of a draw: a hash of (seed, step). Shared by every backend.
inline uint64_t chain_mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline double chain_uniform(uint64_t seed, uint64_t step) {
  return static_cast<double>(chain_mix64(chain_mix64(seed) ^ step) >> 11) * 0x1p-53;
}

// The chain on one row of host logits (modified in place). valid: one flag per row (null:
// all valid). kNumericalError when a valid logit is NaN/Inf.
Result<SampleResult> run_chain(std::span<float> logits, const std::vector<uint8_t>* valid, const SampleRow& row);

}  // namespace ballast::backend
