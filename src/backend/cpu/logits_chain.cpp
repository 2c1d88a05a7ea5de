// The logits-processor chain on host logits; the order is defined in backend/logits_chain.h.
#include "backend/logits_chain.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>

namespace ballast::backend {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}

Result<SampleResult> run_chain(std::span<float> logits, const std::vector<uint8_t>* valid, const SampleRow& row) {
  const SamplingParams& params_ = *row.params;
  const auto prompt = row.prompt;
  const auto generated = row.generated;
  const auto* valid_ = valid;
  std::vector<std::pair<float, int32_t>> cand_;
  const int64_t n = static_cast<int64_t>(logits.size());
  // 1. Vocabulary mask + numerics check on the rows that can be produced.
  for (int64_t i = 0; i < n; ++i) {
    bool ok = !valid_ || (i < static_cast<int64_t>(valid_->size()) && (*valid_)[i]);
    if (!ok) {
      logits[i] = kNegInf;
    } else if (!std::isfinite(logits[i])) {
      return error(ErrorCode::kNumericalError,
                   "non-finite logit (" + std::to_string(logits[i]) + ") for token id " +
                       std::to_string(i) + "; the model produced NaN/Inf — try bf16/fp32 weights "
                       "or run with --check-numerics to find the layer");
    }
  }
  // 2. Log-softmax of the masked logits: reported logprobs (before any transform).
  float mx = kNegInf;
  for (float v : logits) mx = std::max(mx, v);
  if (mx == kNegInf) return error(ErrorCode::kInternal, "no valid token to sample");
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  SampleResult res;
  if (params_.top_logprobs > 0) {
    int k = std::min<int64_t>(params_.top_logprobs, n);
    cand_.clear();
    for (int64_t i = 0; i < n; ++i)
      if (logits[i] != kNegInf) cand_.emplace_back(logits[i], static_cast<int32_t>(i));
    k = std::min<int>(k, static_cast<int>(cand_.size()));
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), [](auto& a, auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int j = 0; j < k; ++j) res.top.emplace_back(cand_[j].second, cand_[j].first - lse);
  }
  std::vector<float> base_(logits.begin(), logits.end());  // masked logits, for the chosen id's logprob
  // 3. logit_bias.
  for (auto& [id, b] : params_.logit_bias)
    if (id >= 0 && id < n && logits[id] != kNegInf) logits[id] += b;
  // 4. Penalties.
  if (params_.repetition_penalty != 1.0) {
    const float p = static_cast<float>(params_.repetition_penalty);
    std::vector<int32_t> seen(prompt.begin(), prompt.end());
    seen.insert(seen.end(), generated.begin(), generated.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n || logits[id] == kNegInf) continue;
      logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p;
    }
  }
  if (params_.presence_penalty != 0.0 || params_.frequency_penalty != 0.0) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t id : generated) counts[id]++;
    for (auto& [id, c] : counts) {
      if (id < 0 || id >= n || logits[id] == kNegInf) continue;
      logits[id] -= static_cast<float>(params_.frequency_penalty * c + params_.presence_penalty);
    }
  }
  // 5. Token-mask slot (grammar / structured output): banned ids drop out.
  if (row.token_mask)
    for (int64_t i = 0; i < n; ++i)
      if (i >= static_cast<int64_t>(row.token_mask->size()) || !(*row.token_mask)[i]) logits[i] = kNegInf;
  if (std::none_of(logits.begin(), logits.end(), [](float v) { return v != kNegInf; }))
    return error(ErrorCode::kInternal, "no valid token to sample (all banned by logit_bias or the token mask)");
  // 6. Greedy.
  int32_t chosen = -1;
  if (params_.temperature <= 0.0) {
    float best = kNegInf;
    for (int64_t i = 0; i < n; ++i)
      if (logits[i] > best) best = logits[i], chosen = static_cast<int32_t>(i);
  } else {
    // 7. Temperature, then top-k / top-p / min-p over the sorted candidates.
    const float inv_t = static_cast<float>(1.0 / params_.temperature);
    cand_.clear();
    for (int64_t i = 0; i < n; ++i)
      if (logits[i] != kNegInf) cand_.emplace_back(logits[i] * inv_t, static_cast<int32_t>(i));
    auto by_logit = [](auto& a, auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t keep = cand_.size();
    if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
      keep = static_cast<size_t>(params_.top_k);
      std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
      cand_.resize(keep);
    } else {
      std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    const float top = cand_[0].first;
    std::vector<double> probs(cand_.size());
    double z = 0;
    for (size_t j = 0; j < cand_.size(); ++j) z += probs[j] = std::exp(cand_[j].first - top);
    for (auto& p : probs) p /= z;
    if (params_.top_p < 1.0) {
      // Keep the smallest prefix whose mass reaches top_p (always at least one token).
      double acc = 0;
      size_t j = 0;
      for (; j < probs.size(); ++j) {
        acc += probs[j];
        if (acc >= params_.top_p) { ++j; break; }
      }
      keep = std::max<size_t>(1, std::min(j, probs.size()));
      cand_.resize(keep);
      probs.resize(keep);
    }
    if (params_.min_p > 0.0) {
      const double thr = params_.min_p * probs[0];
      size_t j = 1;
      while (j < probs.size() && probs[j] >= thr) ++j;
      cand_.resize(j);
      probs.resize(j);
    }
    double tot = 0;
    for (double p : probs) tot += p;
    // 8. The draw: a hash of (seed, step), as on every backend.
    double r = chain_uniform(row.seed, row.step) * tot, acc = 0;
    chosen = cand_.back().second;
    for (size_t j = 0; j < probs.size(); ++j) {
      acc += probs[j];
      if (r < acc) { chosen = cand_[j].second; break; }
    }
  }
  res.id = chosen;
  res.logprob = base_[chosen] - lse;
  return res;
}

}  // namespace ballast::backend
