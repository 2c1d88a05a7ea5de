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
  thread_local std::vector<std::pair<float, int32_t>> cand_;  // reused across calls (vocabulary-sized)
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
  double sum = 0;  // float exps (1 ulp), double sum
  for (float v : logits) sum += std::exp(v - mx);
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
  thread_local std::vector<float> base_;  // masked logits, for the chosen id's logprob
  base_.assign(logits.begin(), logits.end());
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
    // 7. Temperature, then top-k / top-p / min-p over the candidates in sorted order
    // (logit descending, id ascending). Only as much of that order is built as the cuts
    // and the draw reach: candidates are split into bands below the top (each band's
    // values all above the next band's) and a band is sorted when the walk enters it, so
    // a draw in the head of the distribution never sorts the whole vocabulary.
    const float inv_t = static_cast<float>(1.0 / params_.temperature);
    cand_.clear();
    for (int64_t i = 0; i < n; ++i)
      if (logits[i] != kNegInf) cand_.emplace_back(logits[i] * inv_t, static_cast<int32_t>(i));
    auto by_logit = [](auto& a, auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    std::vector<size_t> band_end;  // band k: [band_end[k-1], band_end[k]), unsorted until entered
    if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < cand_.size()) {
      const size_t keep = static_cast<size_t>(params_.top_k);
      std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
      cand_.resize(keep);
      band_end.push_back(keep);
    } else {
      float top_v = kNegInf;
      for (auto& c : cand_) top_v = std::max(top_v, c.first);
      auto it = cand_.begin();
      for (float drop : {2.f, 4.f, 8.f, 16.f, 32.f}) {
        it = std::partition(it, cand_.end(), [&](auto& c) { return c.first >= top_v - drop; });
        band_end.push_back(static_cast<size_t>(it - cand_.begin()));
      }
      band_end.push_back(cand_.size());
    }
    const float top = std::max_element(cand_.begin(), cand_.end(), [](auto& a, auto& b) { return a.first < b.first; })->first;
    auto weight = [&](size_t j) { return static_cast<double>(std::exp(cand_[j].first - top)); };
    // Mass of every candidate (top-p's reference, taken before min-p as in the plain order).
    double z = 0;
    for (size_t j = 0; j < cand_.size(); ++j) z += weight(j);
    const size_t z_count = cand_.size();
    // min-p keeps the candidates with p >= min_p * p_top, i.e. value >= top + ln(min_p): a
    // prefix of the order, cut by value before any sorting.
    size_t n_keep = cand_.size();
    if (params_.min_p > 0.0) {
      const float cut = top + static_cast<float>(std::log(std::min(params_.min_p, 1.0)));
      size_t kept = 0;
      size_t b = 0;
      std::vector<size_t> ends;
      // Bands stay contiguous: compact each band's survivors in place.
      for (size_t k = 0; k < band_end.size(); ++k) {
        const size_t e = band_end[k];
        for (size_t j = b; j < e; ++j)
          if (cand_[j].first >= cut) cand_[kept++] = cand_[j];
        ends.push_back(kept);
        b = e;
      }
      band_end = ends;
      n_keep = kept;
      cand_.resize(kept);
    }
    double tot = z;
    if (n_keep < z_count) {
      tot = 0;
      for (size_t j = 0; j < n_keep; ++j) tot += weight(j);
    }
    size_t sorted_to = 0, band = 0;
    auto ensure_sorted = [&](size_t j) {  // cand_[0..j] in final order
      while (sorted_to <= j && band < band_end.size()) {
        const size_t b0 = sorted_to, e = band_end[band++];
        if (e > b0) std::sort(cand_.begin() + b0, cand_.begin() + e, by_logit);
        sorted_to = std::max(sorted_to, e);
      }
    };
    if (params_.top_p < 1.0) {
      // Keep the smallest prefix whose mass reaches top_p (always at least one token).
      const double need = params_.top_p * z;
      double acc = 0;
      size_t j = 0;
      for (; j < cand_.size(); ++j) {
        ensure_sorted(j);
        acc += weight(j);
        if (acc >= need) { ++j; break; }
      }
      n_keep = std::max<size_t>(1, std::min(j, cand_.size()));
      tot = 0;
      for (size_t i = 0; i < n_keep; ++i) tot += weight(i);
    }
    // 8. The draw: a hash of (seed, step), as on every backend.
    const double r = chain_uniform(row.seed, row.step) * tot;
    double acc = 0;
    chosen = -1;
    for (size_t j = 0; j < n_keep; ++j) {
      ensure_sorted(j);
      acc += weight(j);
      if (r < acc) { chosen = cand_[j].second; break; }
    }
    if (chosen < 0) {
      ensure_sorted(n_keep - 1);
      chosen = cand_[n_keep - 1].second;
    }
  }
  res.id = chosen;
  res.logprob = base_[chosen] - lse;
  return res;
}

}  // namespace ballast::backend
