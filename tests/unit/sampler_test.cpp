// Sampler chain on crafted logits: mask, greedy, seeds, top-k/p, min-p, penalties, NaN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "chain_sampler.h"
#include "engine/sampler.h"

using namespace ballast;
using namespace ballast::engine;
using Sampler = ballast::test::ChainSampler;

namespace {
std::shared_ptr<std::vector<uint8_t>> mask(std::initializer_list<uint8_t> m) {
  return std::make_shared<std::vector<uint8_t>>(m);
}
}  // namespace

TEST(Sampler, GreedySkipsMaskedPaddingRows) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, mask({1, 1, 1, 0}));  // row 3 is padding and is the raw argmax
  std::vector<float> logits = {0.f, 2.f, 1.f, 100.f};
  auto r = s.sample(logits, {}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().id, 1);
}

TEST(Sampler, TopLogprobsAreLogSoftmaxOfMaskedLogits) {
  SamplingParams p;
  p.temperature = 0;
  p.top_logprobs = 2;
  p.repetition_penalty = 2.0;  // must not change the reported logprobs
  Sampler s(p, mask({1, 1, 1, 0}));
  std::vector<float> logits = {1.f, 3.f, 2.f, 50.f};
  std::vector<int32_t> prompt = {1};
  auto r = s.sample(logits, prompt, {});
  ASSERT_TRUE(r.ok());
  const double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  ASSERT_EQ(r.value().top.size(), 2u);
  EXPECT_EQ(r.value().top[0].first, 1);
  EXPECT_NEAR(r.value().top[0].second, 3.0 - z, 1e-5);
  EXPECT_EQ(r.value().top[1].first, 2);
  EXPECT_NEAR(r.value().top[1].second, 2.0 - z, 1e-5);
  // The penalty halves logit 3 -> 1.5 < 2, so greedy picks id 2.
  EXPECT_EQ(r.value().id, 2);
  EXPECT_NEAR(r.value().logprob, 2.0 - z, 1e-5);
}

TEST(Sampler, SameSeedSameDraws) {
  SamplingParams p;
  p.temperature = 1.0;
  p.seed = 1234;
  std::vector<int32_t> a, b;
  for (int run = 0; run < 2; ++run) {
    Sampler s(p, nullptr);
    for (int i = 0; i < 50; ++i) {
      std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.0f, -0.5f};
      (run ? b : a).push_back(s.sample(logits, {}, {}).value().id);
    }
  }
  EXPECT_EQ(a, b);
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 1u);  // it does sample
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p;
  p.temperature = 5.0;
  p.top_k = 1;
  p.seed = 7;
  Sampler s(p, nullptr);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> logits = {1.f, 1.5f, 0.f};
    EXPECT_EQ(s.sample(logits, {}, {}).value().id, 1);
  }
}

TEST(Sampler, TopPKeepsSmallestPrefix) {
  // probs ~ {0.665, 0.245, 0.090}: top_p 0.6 keeps only the first.
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.6;
  p.seed = 3;
  Sampler s(p, nullptr);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> logits = {2.f, 1.f, 0.f};
    EXPECT_EQ(s.sample(logits, {}, {}).value().id, 0);
  }
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0;
  p.min_p = 0.5;  // keeps tokens with prob >= 0.5 * max
  p.seed = 11;
  Sampler s(p, nullptr);
  std::set<int32_t> seen;
  for (int i = 0; i < 200; ++i) {
    std::vector<float> logits = {0.f, 0.f, -5.f};
    seen.insert(s.sample(logits, {}, {}).value().id);
  }
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1}));
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  SamplingParams p;
  p.temperature = 0;
  p.frequency_penalty = 1.0;
  p.presence_penalty = 0.5;
  Sampler s(p, nullptr);
  std::vector<float> logits = {3.f, 2.f};
  std::vector<int32_t> gen = {0};  // 3 - 1 - 0.5 = 1.5 < 2
  EXPECT_EQ(s.sample(logits, {}, gen).value().id, 1);
}

TEST(Sampler, LogitBiasApplies) {
  SamplingParams p;
  p.temperature = 0;
  p.logit_bias = {{2, 10.f}};
  Sampler s(p, nullptr);
  std::vector<float> logits = {3.f, 2.f, 0.f};
  EXPECT_EQ(s.sample(logits, {}, {}).value().id, 2);
}

TEST(Sampler, NonFiniteLogitIsNumericalError) {
  Sampler s(SamplingParams{}, mask({1, 1, 0}));
  std::vector<float> logits = {1.f, NAN, 0.f};
  auto r = s.sample(logits, {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNumericalError);
  EXPECT_NE(r.status().message().find("token id 1"), std::string::npos);
  // NaN in a masked padding row is not the model's output and is ignored.
  Sampler s2(SamplingParams{}, mask({1, 1, 0}));
  std::vector<float> l2 = {1.f, 0.f, NAN};
  EXPECT_TRUE(s2.sample(l2, {}, {}).ok());
}

namespace {
// The chain's sampling steps done the plain way: every candidate sorted (logit descending,
// id ascending), probabilities normalized, top-k, top-p, min-p, then the draw.
int32_t full_sort_draw(const std::vector<float>& logits, const SamplingParams& p, uint64_t seed, uint64_t step) {
  std::vector<std::pair<float, int32_t>> c;
  const float inv_t = static_cast<float>(1.0 / p.temperature);
  for (size_t i = 0; i < logits.size(); ++i) c.emplace_back(logits[i] * inv_t, static_cast<int32_t>(i));
  std::sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) c.resize(p.top_k);
  std::vector<double> pr(c.size());
  double z = 0;
  for (size_t j = 0; j < c.size(); ++j) z += pr[j] = static_cast<double>(std::exp(c[j].first - c[0].first));
  size_t keep = c.size();
  if (p.top_p < 1.0) {
    double acc = 0;
    size_t j = 0;
    for (; j < c.size(); ++j) {
      acc += pr[j] / z;
      if (acc >= p.top_p) { ++j; break; }
    }
    keep = std::max<size_t>(1, std::min(j, c.size()));
  }
  if (p.min_p > 0.0) {
    size_t j = 1;
    while (j < keep && pr[j] >= p.min_p * pr[0]) ++j;
    keep = j;
  }
  double tot = 0;
  for (size_t j = 0; j < keep; ++j) tot += pr[j];
  const double r = backend::chain_uniform(seed, step) * tot;
  double acc = 0;
  for (size_t j = 0; j < keep; ++j) {
    acc += pr[j];
    if (r < acc) return c[j].second;
  }
  return c[keep - 1].second;
}
}  // namespace

// The chain sorts only the bands of the distribution its cuts and draw reach; the ids it
// draws must be those of the full sort, on peaked and flat distributions alike.
TEST(Sampler, BandedSortDrawsWhatAFullSortDraws) {
  std::mt19937 rng(7);
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    SamplingParams p;
    p.temperature = std::uniform_real_distribution<double>(0.2, 2.0)(rng);
    p.top_p = trial % 3 == 0 ? 1.0 : std::uniform_real_distribution<double>(0.05, 0.999)(rng);
    p.min_p = trial % 4 == 1 ? std::uniform_real_distribution<double>(0.001, 0.3)(rng) : 0.0;
    p.top_k = trial % 5 == 2 ? 1 + static_cast<int>(rng() % 50) : 0;
    p.seed = 1000 + trial;
    const size_t n = 64 + rng() % 5000;
    const float spread = std::uniform_real_distribution<float>(0.5f, 12.f)(rng);
    std::vector<float> logits(n);
    for (auto& v : logits) v = std::normal_distribution<float>(0.f, spread)(rng);
    if (trial % 7 == 0) logits[rng() % n] = logits[rng() % n];  // ties
    for (uint64_t step = 0; step < 3; ++step) {
      Sampler s(p, nullptr);
      std::vector<float> work = logits;
      int32_t got = -1;
      for (uint64_t k = 0; k <= step; ++k) {
        work = logits;
        got = s.sample(work, {}, {}).value().id;
      }
      EXPECT_EQ(got, full_sort_draw(logits, p, *p.seed, step)) << "trial " << trial << " step " << step;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 1200);
}
