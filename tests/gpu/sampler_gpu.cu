// GPU sampler (cuda::sample_rows) against the CPU chain (backend/cpu/logits_chain.cpp) on crafted
// logits: greedy ids + logprobs, top-N lists (ties included), masking, non-finite rows,
// bias / penalties (out-of-range ids ignored), top-k=1 == greedy, and the distribution of
// temperature / top-k / top-p / min-p draws (kept set identical, total variation < 0.03
// over 20,000 draws), determinism, V = 262,208. Called from model_gpu.cu's main.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/cuda/sampling_kernels.h"
#include "engine/sampler.h"
#include "../unit/chain_sampler.h"
#include "gpu_check.h"

#if __cplusplus < 202002L
#error "sampler_gpu.cu needs C++20 (engine/sampler.h uses std::span)"
#endif

void run_sampler_gpu_tests();

using namespace ballast;
#define CHECK GPU_CHECK

namespace {


constexpr float kInf = std::numeric_limits<float>::infinity();
using Valid = std::shared_ptr<const std::vector<uint8_t>>;

// Number of draws of the statistical checks (BALLAST_SAMPLER_TEST_DRAWS overrides, e.g. for
// a slow emulator); the total-variation bound scales with 1/sqrt(draws).
int n_draws() {
  const char* e = std::getenv("BALLAST_SAMPLER_TEST_DRAWS");
  return e ? std::max(100, std::atoi(e)) : 20000;
}

// One logits row with its CPU parameters and token history.
struct Case {
  std::vector<float> logits;
  engine::SamplingParams sp;
  std::vector<int32_t> prompt, generated;
  uint64_t step = 0;
};

struct GpuOut {
  std::vector<cuda::SampleRowOut> out;
  std::vector<int32_t> top_ids;  // (m, kMaxTopLogprobs)
  std::vector<float> top_lps;
};

template <class T>
T* upload(const std::vector<T>& v) {
  if (v.empty()) return nullptr;
  T* d = nullptr;
  cudaMalloc(&d, v.size() * sizeof(T));
  cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

// All rows in one sample_rows launch (V = the rows' length).
GpuOut run_gpu(const std::vector<Case>& rows, const Valid& valid, bool with_work = true) {
  const int m = static_cast<int>(rows.size()), V = static_cast<int>(rows[0].logits.size());
  std::vector<float> logits;
  std::vector<cuda::SampleRowParams> params;
  std::vector<int32_t> pen_ids, pen_counts, bias_ids;
  std::vector<float> bias_vals;
  for (const Case& c : rows) {
    logits.insert(logits.end(), c.logits.begin(), c.logits.end());
    cuda::SampleRowParams p{};
    p.temperature = static_cast<float>(c.sp.temperature);
    p.top_k = static_cast<int32_t>(c.sp.top_k);
    p.top_p = static_cast<float>(c.sp.top_p);
    p.min_p = static_cast<float>(c.sp.min_p);
    p.repetition_penalty = static_cast<float>(c.sp.repetition_penalty);
    p.presence_penalty = static_cast<float>(c.sp.presence_penalty);
    p.frequency_penalty = static_cast<float>(c.sp.frequency_penalty);
    cuda::append_penalty_list(c.prompt.data(), c.prompt.size(), c.generated.data(), c.generated.size(), pen_ids,
                              pen_counts, p);
    cuda::append_bias_list(c.sp.logit_bias, bias_ids, bias_vals, p);
    p.top_logprobs = c.sp.top_logprobs;
    p.seed = c.sp.seed.value_or(0);
    p.step = c.step;
    params.push_back(p);
  }
  float* d_logits = upload(logits);
  uint8_t* d_valid = valid ? upload(*valid) : nullptr;
  auto* d_params = upload(params);
  int32_t *d_pen = upload(pen_ids), *d_cnt = upload(pen_counts), *d_bias = upload(bias_ids);
  float* d_bval = upload(bias_vals);
  float* d_work = nullptr;
  if (with_work) cudaMalloc(&d_work, logits.size() * sizeof(float));
  cuda::SampleRowOut* d_out;
  int32_t* d_top;
  float* d_lps;
  cudaMalloc(&d_out, m * sizeof(cuda::SampleRowOut));
  cudaMalloc(&d_top, m * cuda::kMaxTopLogprobs * sizeof(int32_t));
  cudaMalloc(&d_lps, m * cuda::kMaxTopLogprobs * sizeof(float));
  cuda::sample_rows(d_logits, m, V, d_valid, d_params, d_pen, d_cnt, d_bias, d_bval, d_work, d_out, d_top, d_lps, 0);
  const cudaError_t e = cudaDeviceSynchronize();
  CHECK(e == cudaSuccess, "sample_rows: %s", cudaGetErrorString(e));
  GpuOut r;
  r.out.resize(m);
  r.top_ids.resize(m * cuda::kMaxTopLogprobs);
  r.top_lps.resize(m * cuda::kMaxTopLogprobs);
  cudaMemcpy(r.out.data(), d_out, m * sizeof(cuda::SampleRowOut), cudaMemcpyDeviceToHost);
  cudaMemcpy(r.top_ids.data(), d_top, r.top_ids.size() * sizeof(int32_t), cudaMemcpyDeviceToHost);
  cudaMemcpy(r.top_lps.data(), d_lps, r.top_lps.size() * sizeof(float), cudaMemcpyDeviceToHost);
  std::vector<float> after(logits.size());
  cudaMemcpy(after.data(), d_logits, after.size() * sizeof(float), cudaMemcpyDeviceToHost);
  CHECK(std::equal(after.begin(), after.end(), logits.begin(),
                   [](float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }),
        "sample_rows modified the logits");
  for (void* p : {(void*)d_logits, (void*)d_valid, (void*)d_params, (void*)d_pen, (void*)d_cnt, (void*)d_bias,
                  (void*)d_bval, (void*)d_work, (void*)d_out, (void*)d_top, (void*)d_lps})
    if (p) cudaFree(p);
  return r;
}

// CPU Sampler on a copy of the row; *transformed (if given) gets the logits after mask,
// bias and penalties (the Sampler modifies its input in place).
Result<engine::SampleResult> run_cpu(const Case& c, const Valid& valid, std::vector<float>* transformed = nullptr) {
  test::ChainSampler s(c.sp, valid);
  std::vector<float> lg = c.logits;
  auto r = s.sample(lg, c.prompt, c.generated);
  if (transformed) *transformed = lg;
  return r;
}

// Compares id, logprob and the top list of GPU row r with the CPU result.
void expect_same(const GpuOut& g, int r, const Case& c, const Valid& valid, const char* what) {
  auto ref = run_cpu(c, valid);
  const cuda::SampleRowOut& o = g.out[r];
  if (!ref.ok()) {
    CHECK(o.status != cuda::kSampleOk && o.id == -1, "%s: CPU fails (%s) but GPU status %d id %d", what,
          ref.status().message().c_str(), o.status, o.id);
    return;
  }
  CHECK(o.status == cuda::kSampleOk && o.id == ref->id, "%s: id %d (status %d) vs CPU %d", what, o.id, o.status,
        ref->id);
  CHECK(std::fabs(o.logprob - ref->logprob) < 1e-4, "%s: logprob %.6f vs CPU %.6f", what, o.logprob, ref->logprob);
  CHECK(o.n_top == static_cast<int>(ref->top.size()), "%s: n_top %d vs CPU %zu", what, o.n_top, ref->top.size());
  for (int j = 0; j < std::min<int>(o.n_top, ref->top.size()); ++j) {
    const int32_t id = g.top_ids[r * cuda::kMaxTopLogprobs + j];
    const float lp = g.top_lps[r * cuda::kMaxTopLogprobs + j];
    CHECK(id == ref->top[j].first && std::fabs(lp - ref->top[j].second) < 1e-4,
          "%s: top[%d] = (%d, %.6f) vs CPU (%d, %.6f)", what, j, id, lp, ref->top[j].first, ref->top[j].second);
  }
  for (int j = o.n_top; j < cuda::kMaxTopLogprobs; ++j)
    CHECK(g.top_ids[r * cuda::kMaxTopLogprobs + j] == -1, "%s: unused top slot %d holds id %d", what, j,
          g.top_ids[r * cuda::kMaxTopLogprobs + j]);
}

std::vector<float> normal_row(int V, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  std::vector<float> v(V);
  for (float& x : v) x = n(rng);
  return v;
}

// Rounds to bf16 precision (many exact ties), as logits computed from bf16 would have.
std::vector<float> bf16_like(std::vector<float> v) {
  for (float& x : v) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    std::memcpy(&x, &u, 4);
  }
  return v;
}

engine::SamplingParams greedy(int top_logprobs = 0) {
  engine::SamplingParams sp;
  sp.temperature = 0.0;
  sp.top_logprobs = top_logprobs;
  return sp;
}

void test_greedy_top() {
  const int V = 1000;
  std::vector<uint8_t> mask(V, 1);
  for (int i = 0; i < V; i += 7) mask[i] = 0;
  std::vector<Case> rows;
  const int tops[] = {0, 1, 5, 20, 20, 20, 3, 20};
  for (int r = 0; r < 8; ++r) {
    Case c;
    c.logits = normal_row(V, 2.0f + r, 100 + r);
    if (r == 4) c.logits = bf16_like(c.logits);  // ties everywhere
    if (r == 5)                                  // coarse ties: values on a 0.5 grid
      for (float& x : c.logits) x = std::round(x * 2.0f) / 2.0f;
    if (r == 6) c.logits.assign(V, 1.5f);  // all equal: lowest ids
    c.sp = greedy(tops[r]);
    rows.push_back(c);
  }
  for (const Valid& valid : {Valid(), std::make_shared<const std::vector<uint8_t>>(mask)}) {
    GpuOut g = run_gpu(rows, valid);
    for (int r = 0; r < 8; ++r) {
      const std::string what = "greedy row " + std::to_string(r) + (valid ? " masked" : "");
      expect_same(g, r, rows[r], valid, what.c_str());
    }
  }
  // top_logprobs above the number of valid ids: as many as there are.
  std::vector<uint8_t> few(12, 0);
  few[3] = few[7] = few[11] = 1;
  Case c;
  c.logits = normal_row(12, 1.0f, 5);
  c.sp = greedy(10);
  const Valid v = std::make_shared<const std::vector<uint8_t>>(few);
  expect_same(run_gpu({c}, v), 0, c, v, "3 valid ids, top 10");
}

void test_mask_and_nonfinite() {
  const int V = 300;
  std::vector<uint8_t> mask(V, 1);
  mask[17] = mask[200] = mask[299] = 0;
  const Valid valid = std::make_shared<const std::vector<uint8_t>>(mask);
  std::vector<Case> rows(7);
  for (int r = 0; r < 7; ++r) rows[r].logits = normal_row(V, 3.0f, 200 + r), rows[r].sp = greedy(5);
  rows[0].logits[17] = 1e30f;                                         // masked huge: never chosen
  rows[1].logits[5] = std::nanf("");                                  // NaN valid -> status 1
  rows[2].logits[200] = std::nanf("");                                // NaN masked: ignored
  rows[3].logits[6] = kInf;                                           // +inf valid -> status 1
  rows[4].logits[299] = kInf, rows[4].logits[17] = -kInf;             // masked inf: ignored
  rows[5].logits[17] = 1e30f, rows[5].sp.temperature = 1.0;           // sampled, masked huge
  rows[5].sp.seed = 3;
  rows[6].logits[7] = -kInf;                                          // -inf valid -> status 1
  GpuOut g = run_gpu(rows, valid);
  for (int r = 0; r < 7; ++r) {
    const std::string what = "mask/non-finite row " + std::to_string(r);
    if (r != 5) expect_same(g, r, rows[r], valid, what.c_str());
  }
  CHECK(g.out[1].status == cuda::kSampleNonFinite && g.out[3].status == cuda::kSampleNonFinite &&
            g.out[6].status == cuda::kSampleNonFinite,
        "non-finite valid logits: status %d %d %d", g.out[1].status, g.out[3].status, g.out[6].status);
  CHECK(g.out[5].status == cuda::kSampleOk && g.out[5].id != 17 && mask[g.out[5].id],
        "sampled row with a masked huge logit chose %d", g.out[5].id);
  // Many sampled draws never pick a masked id, even one with the largest logit.
  std::vector<Case> draws(400, rows[5]);
  for (int r = 0; r < 400; ++r) draws[r].step = r, draws[r].sp.temperature = 5.0;
  g = run_gpu(draws, valid);
  bool ok = true;
  for (auto& o : g.out) ok = ok && o.status == cuda::kSampleOk && o.id >= 0 && o.id < V && mask[o.id];
  CHECK(ok, "a masked id was drawn");
  // No valid id at all.
  const Valid none = std::make_shared<const std::vector<uint8_t>>(V, 0);
  g = run_gpu({rows[0], rows[5]}, none);
  CHECK(g.out[0].status == cuda::kSampleNoToken && g.out[0].id == -1 && g.out[1].status == cuda::kSampleNoToken,
        "no valid token: status %d/%d id %d", g.out[0].status, g.out[1].status, g.out[0].id);
}

void test_bias_penalties() {
  const int V = 200;
  std::vector<uint8_t> mask(V, 1);
  mask[50] = 0;
  const Valid valid = std::make_shared<const std::vector<uint8_t>>(mask);
  std::vector<float> base = normal_row(V, 2.0f, 300);
  // Known ranking: 10 > 11 > 12 > 13 > everything else; 20..22 negative but high-ish.
  base[10] = 9.0f, base[11] = 8.5f, base[12] = 8.0f, base[13] = 7.75f, base[50] = 20.0f;
  std::vector<Case> rows;
  auto add = [&](auto&& setup) {
    Case c;
    c.logits = base;
    c.sp = greedy(4);
    setup(c);
    rows.push_back(c);
  };
  add([](Case&) {});
  add([](Case& c) { c.sp.logit_bias = {{11, 1.0f}}; });                       // 11 wins
  add([](Case& c) { c.sp.logit_bias = {{10, -kInf}}; });                      // 10 banned
  add([](Case& c) { c.sp.logit_bias = {{50, 100.0f}, {12, 0.25f}}; });       // masked id: no effect
  add([&](Case& c) {                                                           // out-of-range ids
    c.sp.logit_bias = {{-3, 50.0f}, {V, 50.0f}, {V + 7, 50.0f}, {std::numeric_limits<int32_t>::max(), 9.0f},
                       {std::numeric_limits<int32_t>::min(), 9.0f}, {13, 1.5f}};
  });
  add([](Case& c) { c.sp.repetition_penalty = 1.25, c.prompt = {10, 10, 3}; });  // 9/1.25 < 8.5: 11 wins
  add([](Case& c) { c.sp.repetition_penalty = 1.5, c.generated = {10, 11}; });   // 12 wins
  add([&](Case& c) {  // negative logits: multiplied; all ids penalized
    for (int i = 0; i < V; ++i) c.logits[i] = -1.0f - 0.01f * i;
    c.sp.repetition_penalty = 2.0;
    for (int i = 0; i < 5; ++i) c.prompt.push_back(i);
  });
  add([](Case& c) { c.sp.presence_penalty = 0.75, c.generated = {10}; });              // 8.25 < 8.5
  add([](Case& c) { c.sp.frequency_penalty = 0.25, c.generated = {10, 10, 10, 11}; });  // 8.25 vs 8.25: id 10
  add([](Case& c) {
    c.sp.frequency_penalty = 0.5, c.sp.presence_penalty = 0.25;
    c.generated = {10, 10, 11, 11, 12};
    c.prompt = {13};
    c.sp.repetition_penalty = 1.1;
  });
  add([&](Case& c) {  // out-of-range ids in prompt/generated
    c.prompt = {-1, V, V + 100, std::numeric_limits<int32_t>::max()};
    c.generated = {-5, V, 10};
    c.sp.repetition_penalty = 3.0, c.sp.presence_penalty = 0.5, c.sp.frequency_penalty = 0.5;
  });
  add([](Case& c) {  // bias then penalty on the same id
    c.sp.logit_bias = {{12, 2.0f}};
    c.sp.repetition_penalty = 1.2;
    c.prompt = {12, 10};
  });
  const int n_greedy = static_cast<int>(rows.size());
  // Sampled with top_k = 1: the transformed argmax.
  for (int r = 1; r < n_greedy; ++r) {
    Case c = rows[r];
    c.sp.temperature = 0.8;
    c.sp.top_k = 1;
    c.sp.seed = 9;
    rows.push_back(c);
  }
  GpuOut g = run_gpu(rows, valid);
  for (int r = 0; r < static_cast<int>(rows.size()); ++r) {
    const std::string what = "bias/penalty row " + std::to_string(r);
    expect_same(g, r, rows[r], valid, what.c_str());
  }
  // Without a work buffer rows with bias/penalties report kSampleNoWork; others are fine.
  g = run_gpu({rows[0], rows[1]}, valid, false);
  CHECK(g.out[0].status == cuda::kSampleOk && g.out[0].id == 10 && g.out[1].status == cuda::kSampleNoWork,
        "no work buffer: status %d/%d", g.out[0].status, g.out[1].status);
}

void test_topk1_is_greedy() {
  const int V = 4096;
  std::vector<Case> rows;
  for (int r = 0; r < 6; ++r) {
    Case c;
    c.logits = normal_row(V, 4.0f, 400 + r);
    if (r == 1) c.logits = bf16_like(c.logits);
    if (r == 2) c.logits[77] = c.logits[3000] = 40.0f;  // tied maxima: the lower id
    c.sp.temperature = 0.3 + 0.4 * r;
    c.sp.top_k = 1;
    c.sp.top_p = r % 2 ? 0.5 : 1.0;
    c.sp.seed = 1000 + r;
    c.step = r;
    rows.push_back(c);
  }
  GpuOut g = run_gpu(rows, nullptr);
  for (int r = 0; r < 6; ++r) {
    Case c = rows[r];
    c.sp = greedy();
    auto ref = run_cpu(c, nullptr);
    CHECK(ref.ok() && g.out[r].id == ref->id, "top_k=1 row %d: %d vs greedy %d", r, g.out[r].id, ref.ok() ? ref->id : -2);
  }
  CHECK(g.out[2].id == 77, "tied maxima: %d", g.out[2].id);
}

// The CPU chain's kept distribution (sampler.cpp, step 6) over transformed logits t
// (-inf: excluded), probabilities per id.
std::vector<double> kept_distribution(const std::vector<float>& t, const engine::SamplingParams& sp) {
  const float inv_t = static_cast<float>(1.0 / sp.temperature);
  std::vector<std::pair<float, int32_t>> cand;
  for (int i = 0; i < static_cast<int>(t.size()); ++i)
    if (t[i] != -kInf) cand.emplace_back(t[i] * inv_t, i);
  std::sort(cand.begin(), cand.end(),
            [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  if (sp.top_k > 0 && static_cast<size_t>(sp.top_k) < cand.size()) cand.resize(sp.top_k);
  std::vector<double> probs(cand.size());
  double z = 0;
  for (size_t j = 0; j < cand.size(); ++j) z += probs[j] = std::exp(cand[j].first - cand[0].first);
  for (double& p : probs) p /= z;
  size_t keep = cand.size();
  if (sp.top_p < 1.0) {
    double acc = 0;
    size_t j = 0;
    for (; j < probs.size(); ++j) {
      acc += probs[j];
      if (acc >= sp.top_p) {
        ++j;
        break;
      }
    }
    keep = std::max<size_t>(1, std::min(j, probs.size()));
  }
  if (sp.min_p > 0.0) {
    size_t j = 1;
    while (j < keep && probs[j] >= sp.min_p * probs[0]) ++j;
    keep = j;
  }
  std::vector<double> d(t.size(), 0.0);
  double tot = 0;
  for (size_t j = 0; j < keep; ++j) tot += probs[j];
  for (size_t j = 0; j < keep; ++j) d[cand[j].second] = probs[j] / tot;
  return d;
}

double total_variation(const std::vector<double>& p, const std::vector<int>& counts, int n) {
  double tv = 0;
  for (size_t i = 0; i < p.size(); ++i) tv += std::fabs(p[i] - static_cast<double>(counts[i]) / n);
  return tv / 2;
}

void test_distributions() {
  const int V = 50, n = n_draws();
  const double tol = 0.03 * std::sqrt(20000.0 / n);
  std::mt19937 rng(500);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  std::vector<float> base(V);
  for (float& x : base) x = u(rng);
  base[40] = base[41] = base[42] = 1.2f;  // ties, also at a top-k threshold below
  base[3] = 2.5f, base[4] = 2.25f;
  std::vector<uint8_t> mask(V, 1);
  mask[0] = mask[25] = 0;
  const Valid valid = std::make_shared<const std::vector<uint8_t>>(mask);
  // A top-p cut inside a tie: id 5 at 2.0, ids 10, 20, 30, 40 tied at 1.0, the rest at -3;
  // top_p = p(5) + 1.5 p(tie) keeps 5, 10, 20 (the CPU's order among equal logits: by id).
  std::vector<float> tie_row(V, -3.0f);
  tie_row[5] = 2.0f;
  for (int i : {10, 20, 30, 40}) tie_row[i] = 1.0f;
  double z = 0;
  for (int i = 0; i < V; ++i)
    if (mask[i]) z += std::exp(static_cast<double>(tie_row[i]) - 2.0);
  const double tie_p = (1.0 + 1.5 * std::exp(-1.0)) / z;
  struct Config {
    const char* name;
    double t;
    int64_t k;
    double p, min_p;
    bool pen;
    const std::vector<float>* logits = nullptr;  // null: base
  };
  int n_ties_above = 0;  // ids > 1.2 (for a top-k cut inside the tie at 1.2)
  for (int i = 0; i < V; ++i) n_ties_above += mask[i] && base[i] > 1.2f;
  const Config configs[] = {
      {"T=1", 1.0, 0, 1.0, 0.0, false},
      {"T=0.5", 0.5, 0, 1.0, 0.0, false},
      {"T=2 top_k=10", 2.0, 10, 1.0, 0.0, false},
      {"top_k inside a tie", 1.0, n_ties_above + 2, 1.0, 0.0, false},
      {"top_p=0.6", 1.0, 0, 0.6, 0.0, false},
      {"top_p=0.999", 1.0, 0, 0.999, 0.0, false},
      {"min_p=0.3", 1.0, 0, 1.0, 0.3, false},
      {"T=0.8 k=20 p=0.9 min_p=0.05", 0.8, 20, 0.9, 0.05, false},
      {"T=1.5 + bias + penalties, top_p=0.8", 1.5, 0, 0.8, 0.0, true},
      {"top_p inside a tie", 1.0, 0, tie_p, 0.0, false, &tie_row},
      {"top_k=4 + top_p inside a tie", 1.0, 4, 0.6, 0.0, false, &tie_row},
  };
  for (const Config& cf : configs) {
    Case c;
    c.logits = cf.logits ? *cf.logits : base;
    c.sp.temperature = cf.t;
    c.sp.top_k = cf.k;
    c.sp.top_p = cf.p;
    c.sp.min_p = cf.min_p;
    c.sp.seed = 77;
    if (cf.pen) {
      c.sp.logit_bias = {{3, -1.0f}, {7, 1.5f}, {1000, 5.0f}};
      c.sp.repetition_penalty = 1.3;
      c.sp.presence_penalty = 0.5;
      c.sp.frequency_penalty = 0.25;
      c.prompt = {4, 5, 6};
      c.generated = {4, 9, 9, 10};
    }
    std::vector<float> transformed;
    auto first = run_cpu(c, valid, &transformed);
    CHECK(first.ok(), "%s: CPU failed", cf.name);
    if (!first.ok()) continue;
    const std::vector<double> ref = kept_distribution(transformed, c.sp);
    // The reference against the CPU Sampler itself (10x the draws).
    {
      test::ChainSampler s(c.sp, valid);
      std::vector<int> counts(V, 0);
      bool inside = true;
      for (int d = 0; d < 10 * n; ++d) {
        std::vector<float> lg = c.logits;
        auto r = s.sample(lg, c.prompt, c.generated);
        if (!r.ok()) continue;
        counts[r->id]++;
        inside = inside && ref[r->id] > 0;
      }
      const double tv = total_variation(ref, counts, 10 * n);
      CHECK(inside && tv < tol / 2, "%s: reference vs CPU Sampler: tv %.4f, CPU draws inside: %d", cf.name, tv, inside);
    }
    std::vector<Case> rows(n, c);
    for (int d = 0; d < n; ++d) rows[d].step = d;
    GpuOut g = run_gpu(rows, valid);
    std::vector<int> counts(V, 0);
    int bad = 0;
    for (const auto& o : g.out) {
      if (o.status != cuda::kSampleOk || o.id < 0 || o.id >= V) {
        ++bad;
        continue;
      }
      counts[o.id]++;
    }
    CHECK(bad == 0, "%s: %d failed draws", cf.name, bad);
    // Kept set: nothing outside it; everything inside it with >= 15 expected draws seen.
    std::set<int> outside, missing;
    for (int i = 0; i < V; ++i) {
      if (ref[i] == 0 && counts[i] > 0) outside.insert(i);
      if (ref[i] * n >= 15 && counts[i] == 0) missing.insert(i);
    }
    CHECK(outside.empty() && missing.empty(), "%s: %zu ids drawn outside the kept set (first %d), %zu kept never drawn",
          cf.name, outside.size(), outside.empty() ? -1 : *outside.begin(), missing.size());
    const double tv = total_variation(ref, counts, n);
    CHECK(tv < tol, "%s: total variation %.4f (tol %.4f)", cf.name, tv, tol);
    // The logprob is the raw masked one whatever was drawn.
    bool lp_ok = true;
    for (int d = 0; d < std::min(n, 200); ++d) {
      const int id = g.out[d].id;
      if (id < 0) continue;
      double mx = -1e30, sum = 0;
      for (int i = 0; i < V; ++i)
        if (mask[i]) mx = std::max<double>(mx, c.logits[i]);
      for (int i = 0; i < V; ++i)
        if (mask[i]) sum += std::exp(c.logits[i] - mx);
      lp_ok = lp_ok && std::fabs(g.out[d].logprob - (c.logits[id] - mx - std::log(sum))) < 1e-4;
    }
    CHECK(lp_ok, "%s: logprob of drawn ids", cf.name);
    std::printf("  %-36s tv %.4f, %d ids kept\n", cf.name, tv,
                static_cast<int>(std::count_if(ref.begin(), ref.end(), [](double p) { return p > 0; })));
  }
}

void test_determinism() {
  const int V = 3000;
  std::vector<Case> rows(6);
  for (int r = 0; r < 6; ++r) {
    rows[r].logits = normal_row(V, 1.0f, 600);
    rows[r].sp.temperature = 1.0;
    rows[r].sp.top_p = 0.95;
    rows[r].sp.seed = 42;
    rows[r].step = 7 + r / 2;  // rows 0/1, 2/3, 4/5 share (seed, step)
  }
  GpuOut a = run_gpu(rows, nullptr), b = run_gpu(rows, nullptr);
  bool same = true;
  for (int r = 0; r < 6; ++r) same = same && a.out[r].id == b.out[r].id && a.out[r].id >= 0;
  CHECK(same, "two launches differ");
  CHECK(a.out[0].id == a.out[1].id && a.out[2].id == a.out[3].id && a.out[4].id == a.out[5].id,
        "same seed+step, different ids: %d %d / %d %d / %d %d", a.out[0].id, a.out[1].id, a.out[2].id, a.out[3].id,
        a.out[4].id, a.out[5].id);
}

void test_big_vocab() {
  const int V = 262208;
  std::vector<uint8_t> mask(V, 1);
  for (int i = 262144; i < V; ++i) mask[i] = 0;  // padded rows
  std::vector<Case> rows(4);
  rows[0].logits = normal_row(V, 3.0f, 700);
  rows[1].logits = bf16_like(normal_row(V, 5.0f, 701));  // ties at the top-20 threshold
  rows[2].logits = normal_row(V, 2.0f, 702);
  rows[2].logits[V - 1] = 100.0f;  // masked
  rows[2].logits[123456] = 30.0f;
  rows[3].logits = bf16_like(normal_row(V, 2.0f, 703));
  for (int r = 0; r < 4; ++r) rows[r].sp = greedy(r == 3 ? 0 : 20);
  const Valid valid = std::make_shared<const std::vector<uint8_t>>(mask);
  GpuOut g = run_gpu(rows, valid);
  for (int r = 0; r < 4; ++r) {
    const std::string what = "V=262208 row " + std::to_string(r);
    expect_same(g, r, rows[r], valid, what.c_str());
  }
  // Sampled: top-k 50 / top-p 0.9 draws stay inside the CPU's kept sets.
  std::vector<Case> s(8, rows[1]);
  for (int r = 0; r < 8; ++r) {
    s[r].sp = engine::SamplingParams{};
    s[r].sp.temperature = 1.0;
    s[r].sp.seed = 11;
    s[r].step = r;
    if (r < 4) s[r].sp.top_k = 50;
    else s[r].sp.top_p = 0.9;
  }
  g = run_gpu(s, valid);
  for (int r = 0; r < 8; ++r) {
    std::vector<float> t;
    run_cpu(s[r], valid, &t);
    const std::vector<double> ref = kept_distribution(t, s[r].sp);
    const int id = g.out[r].id;
    CHECK(g.out[r].status == cuda::kSampleOk && id >= 0 && id < V && ref[id] > 0,
          "V=262208 sampled row %d: id %d outside the kept set", r, id);
  }
}

}  // namespace

void run_sampler_gpu_tests() {
  std::printf("[sampler: greedy + top logprobs]\n");
  test_greedy_top();
  std::printf("[sampler: mask + non-finite]\n");
  test_mask_and_nonfinite();
  std::printf("[sampler: bias + penalties]\n");
  test_bias_penalties();
  std::printf("[sampler: top_k=1 is greedy]\n");
  test_topk1_is_greedy();
  std::printf("[sampler: distributions]\n");
  test_distributions();
  std::printf("[sampler: determinism]\n");
  test_determinism();
  std::printf("[sampler: V=262208]\n");
  test_big_vocab();
}
