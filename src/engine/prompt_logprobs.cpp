// Host scoring of one logits row for a known token (see prompt_logprobs.h).
#include "engine/prompt_logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ballast::engine {

Result<SampleResult> score_token(std::span<const float> logits, const std::vector<uint8_t>* valid, int32_t target,
                                 int top_n) {
  const int64_t n = static_cast<int64_t>(logits.size());
  auto ok = [&](int64_t i) { return !valid || (i < static_cast<int64_t>(valid->size()) && (*valid)[i]); };
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    if (!ok(i)) continue;
    if (!std::isfinite(logits[i]))
      return error(ErrorCode::kNumericalError, "non-finite logit for token " + std::to_string(i) + " in a prompt position");
    mx = std::max(mx, logits[i]);
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    if (ok(i)) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const float lse = mx + static_cast<float>(std::log(sum));
  SampleResult r;
  r.id = target;
  r.logprob = target >= 0 && target < n && ok(target) ? logits[target] - lse : -std::numeric_limits<float>::infinity();
  if (top_n > 0) {
    std::vector<int32_t> ids;
    ids.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      if (ok(i)) ids.push_back(static_cast<int32_t>(i));
    const size_t k = std::min<size_t>(static_cast<size_t>(top_n), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (size_t j = 0; j < k; ++j) r.top.emplace_back(ids[j], logits[ids[j]] - lse);
  }
  return r;
}

}  // namespace ballast::engine
