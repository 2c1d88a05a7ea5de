// Prompt-token logprobs (completions `echo` + `logprobs`): one logits row scored for a
// given next token on the host, the way the logits chain reports a drawn token's logprob
// (log-softmax of the vocabulary-masked logits; no bias, penalties or temperature).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/sampler.h"

namespace ballast::engine {

// logits: (rows,) one position's raw logits; valid: one flag per row (null: all valid).
// Returns the target's logprob and the top_n most likely valid ids (ties: lower id first).
// kNumericalError when a valid logit is NaN/Inf.
Result<SampleResult> score_token(std::span<const float> logits, const std::vector<uint8_t>* valid, int32_t target,
                                 int top_n);

}  // namespace ballast::engine
