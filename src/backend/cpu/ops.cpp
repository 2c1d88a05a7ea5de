// Elementwise / normalization / rope / attention kernels (AVX2 + scalar tails).
#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/simd.h"

namespace ballast::cpu {
namespace {

// exp(x) for 8 lanes: range reduction to [-ln2/2, ln2/2] and a degree-6 polynomial;
// ~1 ulp in the normal range, 0 below -87.3, +inf above 88.7.
inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.7f), lo = _mm256_set1_ps(-87.3f);
  __m256 big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  __m256 small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  // 2^n split in two factors so n = 128 (x near 88.7) does not overflow the exponent.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  p = _mm256_blendv_ps(p, _mm256_set1_ps(std::numeric_limits<float>::infinity()), big);
  return _mm256_andnot_ps(small, p);
}

// tanh(x) = 1 - 2 / (exp(2x) + 1), exact limits at +-inf.
inline __m256 tanh8(__m256 x) {
  __m256 e = exp8(_mm256_add_ps(x, x));
  return _mm256_sub_ps(_mm256_set1_ps(1.f),
                       _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, _mm256_set1_ps(1.f))));
}

inline __m256 silu8(__m256 x) {
  __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.f), e));
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

inline __m256 gelu_tanh8(__m256 x) {
  __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  __m256 inner = _mm256_mul_ps(_mm256_set1_ps(kSqrt2OverPi), _mm256_fmadd_ps(_mm256_set1_ps(kGeluC), x3, x));
  __m256 t = tanh8(inner);
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.f), t));
}

inline float silu1(float x) { return x / (1.f + std::exp(-x)); }
inline float gelu_tanh1(float x) {
  return 0.5f * x * (1.f + std::tanh(kSqrt2OverPi * (x + kGeluC * x * x * x)));
}

float sum_squares(const float* x, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  float s = hsum(acc);
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

}  // namespace

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  const float inv = 1.f / std::sqrt(sum_squares(x, n) / static_cast<float>(n) + eps);
  const __m256 vi = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi), _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void rmsnorm_rows(float* out, const float* x, const float* w, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r) rmsnorm(out + r * n, x + r * n, w, n, eps);
}

void layernorm(float* out, const float* x, const float* w, const float* b, int64_t n, float eps) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double var = 0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(n);
  const float m = static_cast<float>(mean);
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - m) * inv * w[i] + (b ? b[i] : 0.f);
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = -std::numeric_limits<float>::infinity();
  __m256 vmx = _mm256_set1_ps(mx);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(x + i));
  {
    alignas(32) float t[8];
    _mm256_store_ps(t, vmx);
    for (float v : t) mx = std::max(mx, v);
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.f);
    return;
  }
  vmx = _mm256_set1_ps(mx);
  __m256 vs = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
    _mm256_storeu_ps(x + i, e);
    vs = _mm256_add_ps(vs, e);
  }
  float s = hsum(vs);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    s += x[i];
  }
  scale(x, 1.f / s, n);
}

void silu(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, silu8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = silu1(x[i]);
}

void gelu_tanh(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu_tanh8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = gelu_tanh1(x[i]);
}

void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.70710678118654752f));
}

void swiglu(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = silu1(gate[i]) * up[i];
}

void geglu_tanh(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(gelu_tanh8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gelu_tanh1(gate[i]) * up[i];
}

void add(float* out, const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

void mul(float* out, const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) out[i] = a[i] * b[i];
}

void scale(float* x, float s, int64_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
  for (; i < n; ++i) x[i] *= s;
}

void axpy(float* y, float a, const float* x, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

float dot(const float* a, const float* b, int64_t n) { return dot_f32(a, b, n); }

void softcap(float* x, float cap, int64_t n) {
  const __m256 vc = _mm256_set1_ps(cap), vi = _mm256_set1_ps(1.f / cap);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(vc, tanh8(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi))));
  for (; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void rope_inv_freq(float* inv_freq, int64_t rot_dim, float theta) {
  for (int64_t i = 0; i < rot_dim / 2; ++i) {
    inv_freq[i] = static_cast<float>(std::pow(static_cast<double>(theta), -2.0 * i / rot_dim));
  }
}

void rope_cos_sin(const float* inv_freq, int64_t rot_dim, float pos, float* cos, float* sin) {
  for (int64_t i = 0; i < rot_dim / 2; ++i) {
    // double: pos * freq reaches 1e5+ rad at long contexts; float loses the phase.
    const double a = static_cast<double>(pos) * static_cast<double>(inv_freq[i]);
    cos[i] = static_cast<float>(std::cos(a));
    sin[i] = static_cast<float>(std::sin(a));
  }
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, const float* cos,
          const float* sin, RopeLayout layout) {
  const int64_t half = rot_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    if (layout == RopeLayout::kNeox) {
      int64_t i = 0;
      for (; i + 8 <= half; i += 8) {
        __m256 a = _mm256_loadu_ps(v + i), b = _mm256_loadu_ps(v + i + half);
        __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
        _mm256_storeu_ps(v + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
        _mm256_storeu_ps(v + i + half, _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
      }
      for (; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos[i] - b * sin[i];
        v[i + half] = a * sin[i] + b * cos[i];
      }
    } else {
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * cos[i] - b * sin[i];
        v[2 * i + 1] = a * sin[i] + b * cos[i];
      }
    }
  }
}

namespace {

// One (query, head): out = softmax(scale * K q) V over key rows [lo, hi].
void attend_one(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t lo,
                int64_t hi, float* out, const AttentionParams& p, float* scores) {
  const int64_t d = p.head_dim;
  const int64_t n = hi - lo + 1;
  for (int64_t t = 0; t < n; ++t) scores[t] = p.scale * dot_f32(q, k + (lo + t) * kv_stride, d);
  if (p.softcap > 0.f) softcap(scores, p.softcap, n);
  softmax(scores, n);
  std::fill(out, out + d, 0.f);
  for (int64_t t = 0; t < n; ++t) axpy(out, scores[t], v + (lo + t) * kv_stride, d);
}

}  // namespace

void attention(const float* q, int64_t n_q, int64_t q_pos0, const float* k, const float* v,
               int64_t kv_stride, float* out, const AttentionParams& p, ThreadPool* pool) {
  const int64_t group = p.n_heads / p.n_kv_heads;
  auto body = [&](int64_t b, int64_t e) {
    thread_local std::vector<float> scores;
    if (static_cast<int64_t>(scores.size()) < q_pos0 + n_q) scores.resize(q_pos0 + n_q);
    for (int64_t job = b; job < e; ++job) {
      const int64_t i = job / p.n_heads, h = job % p.n_heads;
      const int64_t pos = q_pos0 + i;
      const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
      const int64_t kv_off = (h / group) * p.head_dim;
      attend_one(q + (i * p.n_heads + h) * p.head_dim, k + kv_off, v + kv_off, kv_stride, lo, pos,
                 out + (i * p.n_heads + h) * p.head_dim, p, scores.data());
    }
  };
  if (pool) {
    pool->parallel_for(n_q * p.n_heads, body);
  } else {
    body(0, n_q * p.n_heads);
  }
}

}  // namespace ballast::cpu
