// cpu ops vs naive scalar (double) references.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <limits>
#include <vector>

#include "backend/cpu/ops.h"
#include "cpu_test_util.h"

namespace ballast::cpu {
namespace {

using testing::random_floats;

void expect_near_rel(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << "index " << i;
  }
}

TEST(CpuOps, Rmsnorm) {
  for (int64_t n : {1, 7, 64, 577}) {
    auto x = random_floats(n, 1, 3.f), w = random_floats(n, 2);
    std::vector<float> out(n);
    rmsnorm(out.data(), x.data(), w.data(), n, 1e-6f);
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = x[i] * inv * w[i];
    expect_near_rel(out, want, 1e-5);
    rmsnorm(x.data(), x.data(), w.data(), n, 1e-6f);  // in place
    expect_near_rel(x, want, 1e-5);
  }
}

TEST(CpuOps, RmsnormRows) {
  const int64_t rows = 3, n = 24;
  auto x = random_floats(rows * n, 3), w = random_floats(n, 4);
  std::vector<float> out(rows * n), one(n);
  rmsnorm_rows(out.data(), x.data(), w.data(), rows, n, 1e-5f);
  for (int64_t r = 0; r < rows; ++r) {
    rmsnorm(one.data(), x.data() + r * n, w.data(), n, 1e-5f);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(out[r * n + i], one[i]);
  }
}

TEST(CpuOps, Layernorm) {
  const int64_t n = 50;
  auto x = random_floats(n, 5, 2.f), w = random_floats(n, 6), b = random_floats(n, 7);
  std::vector<float> out(n);
  layernorm(out.data(), x.data(), w.data(), b.data(), n, 1e-5f);
  double m = 0, v = 0;
  for (float e : x) m += e;
  m /= n;
  for (float e : x) v += (e - m) * (e - m);
  v /= n;
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = (x[i] - m) / std::sqrt(v + 1e-5) * w[i] + b[i];
  expect_near_rel(out, want, 1e-5);
}

TEST(CpuOps, Softmax) {
  for (int64_t n : {1, 5, 8, 33, 1000}) {
    auto x = random_floats(n, 8, 10.f);
    std::vector<double> want(n);
    double mx = -1e300, s = 0;
    for (float v : x) mx = std::max(mx, double(v));
    for (int64_t i = 0; i < n; ++i) s += want[i] = std::exp(x[i] - mx);
    for (auto& v : want) v /= s;
    softmax(x.data(), n);
    expect_near_rel(x, want, 2e-6);
  }
}

TEST(CpuOps, SoftmaxMaskedEntries) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1.f, -inf, 2.f, -inf, -inf, -inf, -inf, -inf, -inf, 0.5f};
  softmax(x.data(), x.size());
  EXPECT_EQ(x[1], 0.f);
  double s = 0;
  for (float v : x) s += v;
  EXPECT_NEAR(s, 1.0, 1e-6);
  std::vector<float> all(9, -inf);
  softmax(all.data(), all.size());
  for (float v : all) EXPECT_EQ(v, 0.f);
}

TEST(CpuOps, Activations) {
  std::vector<float> x = random_floats(203, 9, 4.f);
  x[0] = 0.f; x[1] = 30.f; x[2] = -30.f; x[3] = 100.f; x[4] = -100.f; x[5] = 1e-8f;
  std::vector<double> ws(x.size()), wg(x.size()), we(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double v = x[i];
    ws[i] = v / (1 + std::exp(-v));
    wg[i] = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    we[i] = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  }
  auto s = x, g = x, e = x;
  silu(s.data(), s.size());
  gelu_tanh(g.data(), g.size());
  gelu_erf(e.data(), e.size());
  expect_near_rel(s, ws, 1e-6);
  expect_near_rel(g, wg, 1e-6);
  expect_near_rel(e, we, 1e-6);
}

TEST(CpuOps, GatedActivations) {
  const int64_t n = 77;
  auto gate = random_floats(n, 10, 3.f), up = random_floats(n, 11);
  std::vector<float> a(n), b(n);
  swiglu(a.data(), gate.data(), up.data(), n);
  geglu_tanh(b.data(), gate.data(), up.data(), n);
  std::vector<double> wa(n), wb(n);
  for (int64_t i = 0; i < n; ++i) {
    double v = gate[i];
    wa[i] = v / (1 + std::exp(-v)) * up[i];
    wb[i] = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))) * up[i];
  }
  expect_near_rel(a, wa, 1e-6);
  expect_near_rel(b, wb, 1e-6);
  swiglu(gate.data(), gate.data(), up.data(), n);  // aliasing out == gate
  expect_near_rel(gate, wa, 1e-6);
}

TEST(CpuOps, Elementwise) {
  const int64_t n = 29;
  auto a = random_floats(n, 12), b = random_floats(n, 13);
  std::vector<float> s(n), m(n);
  add(s.data(), a.data(), b.data(), n);
  mul(m.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(s[i], a[i] + b[i]);
    EXPECT_EQ(m[i], a[i] * b[i]);
  }
  auto y = a;
  axpy(y.data(), 0.5f, b.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], a[i] + 0.5f * b[i], 1e-6);
  auto c = a;
  scale(c.data(), 3.f, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(c[i], a[i] * 3.f);
  double d = 0;
  for (int64_t i = 0; i < n; ++i) d += double(a[i]) * b[i];
  EXPECT_NEAR(dot(a.data(), b.data(), n), d, 1e-5);
  auto sc = random_floats(n, 14, 100.f);
  auto want = sc;
  softcap(sc.data(), 30.f, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(sc[i], 30.0 * std::tanh(want[i] / 30.0), 1e-4);
}

// Naive rope of one head in double.
void rope_ref(std::vector<double>& v, int64_t rot, double pos, double theta, RopeLayout layout) {
  for (int64_t i = 0; i < rot / 2; ++i) {
    // inv_freq is a float table (as in HF); the phase is then computed in double.
    double f = static_cast<float>(std::pow(theta, -2.0 * i / rot)), c = std::cos(pos * f), s = std::sin(pos * f);
    int64_t a = layout == RopeLayout::kNeox ? i : 2 * i, b = layout == RopeLayout::kNeox ? i + rot / 2 : 2 * i + 1;
    double x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
}

TEST(CpuOps, RopeBothLayouts) {
  const int64_t heads = 3, hd = 64;
  for (RopeLayout layout : {RopeLayout::kNeox, RopeLayout::kInterleaved}) {
    for (int64_t rot : {64, 32}) {
      for (float pos : {0.f, 1.f, 17.f, 4095.f}) {
        auto x = random_floats(heads * hd, 15);
        std::vector<float> inv(rot / 2), c(rot / 2), s(rot / 2);
        rope_inv_freq(inv.data(), rot, 10000.f);
        rope_cos_sin(inv.data(), rot, pos, c.data(), s.data());
        std::vector<double> want;
        for (int64_t h = 0; h < heads; ++h) {
          std::vector<double> v(x.begin() + h * hd, x.begin() + (h + 1) * hd);
          rope_ref(v, rot, pos, 10000.0, layout);
          want.insert(want.end(), v.begin(), v.end());
        }
        rope(x.data(), heads, hd, rot, c.data(), s.data(), layout);
        expect_near_rel(x, want, 2e-5);
      }
    }
  }
}

// Naive causal GQA attention in double.
std::vector<double> attention_ref(const std::vector<float>& q, int64_t n_q, int64_t pos0,
                                  const std::vector<float>& k, const std::vector<float>& v,
                                  int64_t stride, const AttentionParams& p) {
  std::vector<double> out(n_q * p.n_heads * p.head_dim, 0.0);
  const int64_t group = p.n_heads / p.n_kv_heads;
  for (int64_t i = 0; i < n_q; ++i) {
    for (int64_t h = 0; h < p.n_heads; ++h) {
      const int64_t pos = pos0 + i, kvh = h / group;
      const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
      std::vector<double> sc;
      for (int64_t t = lo; t <= pos; ++t) {
        double d = 0;
        for (int64_t e = 0; e < p.head_dim; ++e)
          d += double(q[(i * p.n_heads + h) * p.head_dim + e]) * k[t * stride + kvh * p.head_dim + e];
        d *= p.scale;
        if (p.softcap > 0) d = p.softcap * std::tanh(d / p.softcap);
        sc.push_back(d);
      }
      double mx = -1e300, s = 0;
      for (double d : sc) mx = std::max(mx, d);
      for (double& d : sc) s += d = std::exp(d - mx);
      for (int64_t t = lo; t <= pos; ++t)
        for (int64_t e = 0; e < p.head_dim; ++e)
          out[(i * p.n_heads + h) * p.head_dim + e] += sc[t - lo] / s * v[t * stride + kvh * p.head_dim + e];
    }
  }
  return out;
}

void check_attention(int64_t n_q, int64_t pos0, int64_t window, float cap, bool threaded, int64_t n_heads = 8,
                     int64_t n_kv_heads = 2, int64_t head_dim = 32, bool f16 = false) {
  SCOPED_TRACE("n_q=" + std::to_string(n_q) + " pos0=" + std::to_string(pos0) + " window=" + std::to_string(window) +
               " heads=" + std::to_string(n_heads) + "/" + std::to_string(n_kv_heads) + " head_dim=" +
               std::to_string(head_dim));
  AttentionParams p;
  p.n_heads = n_heads;
  p.n_kv_heads = n_kv_heads;
  p.head_dim = head_dim;
  p.scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  p.softcap = cap;
  p.window = window;
  const int64_t stride = p.n_kv_heads * p.head_dim + 5;  // padded rows
  const int64_t n_kv = pos0 + n_q;
  auto q = random_floats(n_q * p.n_heads * p.head_dim, 16, 2.f);
  auto k = random_floats(n_kv * stride, 17, 2.f), v = random_floats(n_kv * stride, 18);
  std::vector<float> out(q.size(), NAN);
  ThreadPool pool(2);
  if (f16) {
    // Half-float pools: the reference sees the values the pool holds.
    std::vector<uint16_t> k16(k.size()), v16(v.size());
    f32_to_f16_row(k.data(), k16.data(), static_cast<int64_t>(k.size()));
    f32_to_f16_row(v.data(), v16.data(), static_cast<int64_t>(v.size()));
    f16_to_f32_row(k16.data(), k.data(), static_cast<int64_t>(k.size()));
    f16_to_f32_row(v16.data(), v.data(), static_cast<int64_t>(v.size()));
    p.kv_f16 = true;
    attention(q.data(), n_q, pos0, k16.data(), v16.data(), stride, out.data(), p, threaded ? &pool : nullptr);
  } else {
    attention(q.data(), n_q, pos0, k.data(), v.data(), stride, out.data(), p, threaded ? &pool : nullptr);
  }
  expect_near_rel(out, attention_ref(q, n_q, pos0, k, v, stride, p), 2e-5);
}

TEST(CpuOps, AttentionDecode) { check_attention(1, 40, 0, 0.f, false); }
TEST(CpuOps, AttentionFirstToken) { check_attention(1, 0, 0, 0.f, true); }
TEST(CpuOps, AttentionPrefillCausal) { check_attention(13, 0, 0, 0.f, true); }
TEST(CpuOps, AttentionChunkedPrefill) { check_attention(9, 20, 0, 0.f, true); }
TEST(CpuOps, AttentionSlidingWindow) { check_attention(12, 30, 8, 0.f, true); }
TEST(CpuOps, AttentionSoftcap) { check_attention(4, 10, 0, 5.f, true); }
// Spans longer than one key chunk (256) take the split-and-merge path.
TEST(CpuOps, AttentionLongDecode) { check_attention(1, 700, 0, 0.f, true); }
TEST(CpuOps, AttentionLongPrefillMixedSpans) { check_attention(40, 250, 0, 0.f, true); }
TEST(CpuOps, AttentionLongWindowed) { check_attention(3, 900, 300, 3.f, false); }
// Odd groups (SmolLM2: 9 heads over 3 kv heads, head_dim 64), head dims that are not a
// multiple of the vector width (generic path), Gemma's 256, prompts and decode.
TEST(CpuOps, AttentionShapes) {
  for (auto [h, kv, d] : {std::tuple<int64_t, int64_t, int64_t>{9, 3, 64}, {4, 4, 36}, {4, 1, 256}, {6, 2, 24}}) {
    check_attention(37, 0, 0, 0.f, true, h, kv, d);
    check_attention(5, 300, 0, 0.f, true, h, kv, d);
    check_attention(1, 611, 0, 0.f, true, h, kv, d);
    check_attention(20, 100, 50, 0.f, false, h, kv, d);
  }
}

// Half-float K/V pools (the default mode's cache): prompts, decode, windows, soft-cap,
// the generic path (head_dim 36) and long spans split into key chunks.
TEST(CpuOps, AttentionHalfFloatCache) {
  for (auto [h, kv, d] : {std::tuple<int64_t, int64_t, int64_t>{9, 3, 64}, {4, 4, 36}, {8, 2, 32}}) {
    check_attention(37, 0, 0, 0.f, true, h, kv, d, true);
    check_attention(1, 611, 0, 0.f, true, h, kv, d, true);
    check_attention(12, 30, 8, 0.f, true, h, kv, d, true);
    check_attention(4, 10, 0, 5.f, false, h, kv, d, true);
  }
}

TEST(CpuOps, HalfFloatRowsRoundTrip) {
  std::vector<float> x = {0.f, -0.f, 1.f, -2.5f, 65504.f, 1e-8f, 3.14159f, 0.1f, 100000.f};
  std::vector<uint16_t> h(x.size());
  std::vector<float> y(x.size());
  f32_to_f16_row(x.data(), h.data(), static_cast<int64_t>(x.size()));
  f16_to_f32_row(h.data(), y.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(y[2], 1.f);
  EXPECT_EQ(y[3], -2.5f);
  EXPECT_EQ(y[4], 65504.f);
  EXPECT_NEAR(y[6], 3.14159f, 1e-3);
  EXPECT_TRUE(std::isinf(y[8]));  // beyond half range
}

}  // namespace
}  // namespace ballast::cpu
