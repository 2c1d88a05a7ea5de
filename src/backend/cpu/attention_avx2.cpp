// Attention kernels for CPUs without AVX-512 (AVX2 + FMA, the build's baseline): the
// same two schemes as attention_tiled.cpp with 8-lane vectors.
//  - Prompts: the queries of a 16-query tile that share a kv head are the rows of
//    S = Q K^T over 32-key chunks (K transposed once per chunk), an online softmax per
//    row, then O += P V, register-blocked.
//  - Decode: one query's heads over one key chunk, 8-key transposed reductions for Q K and
//    the group's heads as register rows for P V.
// Same contracts as the AVX-512 versions (called from attention.cpp).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "backend/cpu/ops.h"

namespace ballast::cpu {
namespace {

constexpr int64_t kKeys = 32;     // keys per chunk (4 ymm of scores per row)
constexpr int64_t kQueries = 16;  // queries per tile (times the group's heads = rows)

inline int64_t cache_row_of(const int32_t* blocks, int64_t t) {
  return blocks ? static_cast<int64_t>(blocks[t >> 4]) * 16 + (t & 15) : t;
}

bool avx2_enabled() {
  static const bool on = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                         !(std::getenv("BALLAST_CPU_KERNELS") && std::string(std::getenv("BALLAST_CPU_KERNELS")) == "rows");
  return on;
}

// exp for 8 lanes: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n through the
// exponent bits; 0 below -87.3.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  const __m256 small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
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
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));  // p * 2^n (n in [-126, 127])
  return _mm256_andnot_ps(small, p);
}

// 8 K/V values as floats, from a float or half-float row.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// S[r][0..32) = sum_k Q[r][k] * Kt[k][0..32) for rows [0, RB).
template <int RB>
inline void qk_rows(const float* qr, int64_t d, const float* kt, float* s) {
  __m256 acc[RB][4];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    const float* kk = kt + k * kKeys;
    const __m256 k0 = _mm256_loadu_ps(kk), k1 = _mm256_loadu_ps(kk + 8), k2 = _mm256_loadu_ps(kk + 16),
                 k3 = _mm256_loadu_ps(kk + 24);
#pragma GCC unroll 2
    for (int r = 0; r < RB; ++r) {
      const __m256 qv = _mm256_broadcast_ss(qr + r * d + k);
      acc[r][0] = _mm256_fmadd_ps(qv, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(qv, k1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(qv, k2, acc[r][2]);
      acc[r][3] = _mm256_fmadd_ps(qv, k3, acc[r][3]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < 4; ++j) _mm256_storeu_ps(s + r * kKeys + 8 * j, acc[r][j]);
}

// O[r][c0 .. c0 + 8 NV) += sum_c P[r][c] * V_c[c0 ..], rows [0, RB), keys [0, nk).
template <int RB, int NV, class V>
inline void pv_rows(const float* p, const V* const* vrows, int64_t nk, int64_t c0, float* o, int64_t d,
                    int64_t ps) {
  __m256 acc[RB][NV];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_loadu_ps(o + r * d + c0 + 8 * j);
  for (int64_t c = 0; c < nk; ++c) {
    __m256 v[NV];
    for (int j = 0; j < NV; ++j) v[j] = load8(vrows[c] + c0 + 8 * j);
#pragma GCC unroll 2
    for (int r = 0; r < RB; ++r) {
      const __m256 pv = _mm256_broadcast_ss(p + r * ps + c);
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_fmadd_ps(pv, v[j], acc[r][j]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < NV; ++j) _mm256_storeu_ps(o + r * d + c0 + 8 * j, acc[r][j]);
}

template <int RB, class V>
void pv_block(const float* p, const V* const* vrows, int64_t nk, float* o, int64_t d, int64_t ps) {
  for (int64_t c0 = 0; c0 < d; c0 += 32) {
    switch (std::min<int64_t>(4, (d - c0) / 8)) {
      case 4: pv_rows<RB, 4, V>(p, vrows, nk, c0, o, d, ps); break;
      case 3: pv_rows<RB, 3, V>(p, vrows, nk, c0, o, d, ps); break;
      case 2: pv_rows<RB, 2, V>(p, vrows, nk, c0, o, d, ps); break;
      default: pv_rows<RB, 1, V>(p, vrows, nk, c0, o, d, ps); break;
    }
  }
}

// r[i] = sum of the lanes of a[i], i < 8.
inline __m256 reduce8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31));
}

// Dot of q (pre-scaled) with key row kr, d = 8 * nv, as 8 lanes.
template <class K>
inline __m256 dot_lanes(const float* q, const K* kr, int64_t d) {
  __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(q), load8(kr));
  for (int64_t c = 8; c < d; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8(kr + c), acc);
  return acc;
}

struct TileBuffers {
  std::vector<float> q, o, s, kt, m, l;
  std::vector<float> krow, vbuf;  // f16 pools: a converted K row; the chunk's V rows (keys, d)
  std::vector<const float*> vrows;
};

// Queries [i0, i1) of kv head g.
void attend_tile(const float* q, int64_t i0, int64_t i1, int64_t q_pos0, const void* k, const void* v,
                 int64_t kv_stride, const int32_t* blocks, int64_t g, float* out, const AttentionParams& p,
                 TileBuffers& b) {
  const int64_t d = p.head_dim, group = p.n_heads / p.n_kv_heads, nq = i1 - i0, R = nq * group;
  b.q.resize(R * d);        // (R, d) pre-scaled query rows
  b.o.assign(R * d, 0.f);   // (R, d) unnormalized outputs
  b.s.resize(R * kKeys);    // (R, 32) scores, then probabilities
  b.kt.resize(d * kKeys);   // (d, 32) the chunk's keys, transposed
  b.m.assign(R, -std::numeric_limits<float>::infinity());
  b.l.assign(R, 0.f);
  b.vrows.resize(kKeys);
  if (p.kv_f16) {
    b.krow.resize(d);
    b.vbuf.resize(kKeys * d);
  }
  // Row r = (query i0 + r / group, head g * group + r % group).
  for (int64_t r = 0; r < R; ++r) {
    const float* src = q + ((i0 + r / group) * p.n_heads + g * group + r % group) * d;
    for (int64_t c = 0; c < d; ++c) b.q[r * d + c] = src[c] * p.scale;
  }
  auto lo_of = [&](int64_t pos) { return p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0; };
  const int64_t lo = lo_of(q_pos0 + i0), hi = q_pos0 + i1 - 1;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t kc = lo; kc <= hi; kc += kKeys) {
    const int64_t nk = std::min(kKeys, hi - kc + 1);
    for (int64_t c = 0; c < kKeys; ++c) {
      if (c < nk) {
        const int64_t row = cache_row_of(blocks, kc + c);
        const float* kr = kv_head_row(k, row, kv_stride, g, d, p.kv_f16, b.krow.data());
        for (int64_t j = 0; j < d; ++j) b.kt[j * kKeys + c] = kr[j];
        b.vrows[c] = kv_head_row(v, row, kv_stride, g, d, p.kv_f16, p.kv_f16 ? b.vbuf.data() + c * d : nullptr);
      } else {
        for (int64_t j = 0; j < d; ++j) b.kt[j * kKeys + c] = 0.f;
      }
    }
    int64_t r = 0;
    for (; r + 2 <= R; r += 2) qk_rows<2>(b.q.data() + r * d, d, b.kt.data(), b.s.data() + r * kKeys);
    for (; r < R; ++r) qk_rows<1>(b.q.data() + r * d, d, b.kt.data(), b.s.data() + r * kKeys);
    // Mask, soft-cap, online softmax: P overwrites S.
    for (r = 0; r < R; ++r) {
      float* s = b.s.data() + r * kKeys;
      const int64_t pos = q_pos0 + i0 + r / group;
      const int64_t c_lo = std::max<int64_t>(0, lo_of(pos) - kc), c_hi = std::min<int64_t>(nk, pos - kc + 1);
      if (c_hi <= c_lo) {
        std::fill(s, s + kKeys, 0.f);
        continue;
      }
      for (int64_t c = 0; c < c_lo; ++c) s[c] = ninf;
      for (int64_t c = c_hi; c < kKeys; ++c) s[c] = ninf;
      if (p.softcap > 0.f)
        for (int64_t c = c_lo; c < c_hi; ++c) s[c] = p.softcap * std::tanh(s[c] / p.softcap);
      const __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8)),
                                      _mm256_max_ps(_mm256_loadu_ps(s + 16), _mm256_loadu_ps(s + 24)));
      const float m_new = std::max(b.m[r], hmax8(mx));
      const float alpha = b.m[r] == ninf ? 0.f : std::exp(b.m[r] - m_new);
      b.m[r] = m_new;
      const __m256 vm = _mm256_set1_ps(m_new);
      __m256 sum = _mm256_setzero_ps();
      for (int j = 0; j < 4; ++j) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + 8 * j), vm));
        _mm256_storeu_ps(s + 8 * j, e);
        sum = _mm256_add_ps(sum, e);
      }
      b.l[r] = b.l[r] * alpha + hsum8(sum);
      if (alpha != 1.f) {
        float* o = b.o.data() + r * d;
        const __m256 va = _mm256_set1_ps(alpha);
        for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(o + c, _mm256_mul_ps(va, _mm256_loadu_ps(o + c)));
      }
    }
    for (r = 0; r + 2 <= R; r += 2) pv_block<2>(b.s.data() + r * kKeys, b.vrows.data(), nk, b.o.data() + r * d, d, kKeys);
    for (; r < R; ++r) pv_block<1>(b.s.data() + r * kKeys, b.vrows.data(), nk, b.o.data() + r * d, d, kKeys);
  }
  for (int64_t r = 0; r < R; ++r) {
    float* dst = out + ((i0 + r / group) * p.n_heads + g * group + r % group) * d;
    const float inv = b.l[r] > 0.f ? 1.f / b.l[r] : 0.f;
    for (int64_t c = 0; c < d; ++c) dst[c] = b.o[r * d + c] * inv;
  }
}

struct ChunkBuffers {
  std::vector<float> q, s, o;
};

}  // namespace

bool attention_avx2_supported(const AttentionParams& p) { return avx2_enabled() && p.head_dim % 8 == 0; }

namespace {

// One query's heads [h0, h0 + group) (kv head g) over keys [lo, hi], K/V elements E
// (float or half) read in place.
template <class E>
void attend_chunk_t(const float* q_i, const E* k, const E* v, int64_t kv_stride, const int32_t* blocks, int64_t g,
                    int64_t h0, int64_t group, int64_t lo, int64_t hi, const AttentionParams& p, float* max_out,
                    float* sum_out, float* const* acc_out) {
  const int64_t d = p.head_dim, n = hi - lo + 1;
  thread_local ChunkBuffers b;
  thread_local std::vector<const E*> krows, vrows;
  b.q.resize(group * d);  // (group, d) pre-scaled
  b.s.resize(group * n);  // (group, n) scores, then probabilities
  krows.resize(n);
  vrows.resize(n);
  for (int64_t j = 0; j < group; ++j)
    for (int64_t c = 0; c < d; ++c) b.q[j * d + c] = q_i[(h0 + j) * d + c] * p.scale;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t row = cache_row_of(blocks, lo + t) * kv_stride + g * d;
    krows[t] = k + row;
    vrows[t] = v + row;
  }
  for (int64_t j = 0; j < group; ++j) {
    const float* qj = b.q.data() + j * d;
    float* s = b.s.data() + j * n;
    int64_t t = 0;
    for (; t + 8 <= n; t += 8) {
      __m256 a[8];
      for (int u = 0; u < 8; ++u) a[u] = dot_lanes(qj, krows[t + u], d);
      _mm256_storeu_ps(s + t, reduce8(a));
    }
    for (; t < n; ++t) s[t] = hsum8(dot_lanes(qj, krows[t], d));
    if (p.softcap > 0.f)
      for (t = 0; t < n; ++t) s[t] = p.softcap * std::tanh(s[t] / p.softcap);
    float m = -std::numeric_limits<float>::infinity();
    __m256 mx = _mm256_set1_ps(m);
    for (t = 0; t + 8 <= n; t += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + t));
    m = hmax8(mx);
    for (; t < n; ++t) m = std::max(m, s[t]);
    const __m256 vm = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    for (t = 0; t + 8 <= n; t += 8) {
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), vm));
      _mm256_storeu_ps(s + t, e);
      sum = _mm256_add_ps(sum, e);
    }
    float tail = 0.f;
    for (; t < n; ++t) {
      s[t] = std::exp(s[t] - m);
      tail += s[t];
    }
    max_out[j] = m;
    sum_out[j] = hsum8(sum) + tail;
  }
  // acc rows: heads of the group, zeroed, then P V with the heads as register rows.
  b.o.assign(group * d, 0.f);
  int64_t r = 0;
  for (; r + 2 <= group; r += 2) pv_block<2>(b.s.data() + r * n, vrows.data(), n, b.o.data() + r * d, d, n);
  for (; r < group; ++r) pv_block<1>(b.s.data() + r * n, vrows.data(), n, b.o.data() + r * d, d, n);
  for (int64_t j = 0; j < group; ++j) std::copy(b.o.data() + j * d, b.o.data() + (j + 1) * d, acc_out[j]);
}

}  // namespace

// One query's heads [h0, h0 + group) (kv head g) over keys [lo, hi]: unnormalized
// acc[j] (head_dim), max[j], sum[j], as attention.cpp's key-chunk jobs need them.
void attend_chunk_avx2(const float* q_i, const void* k, const void* v, int64_t kv_stride, const int32_t* blocks,
                       int64_t g, int64_t h0, int64_t group, int64_t lo, int64_t hi, const AttentionParams& p,
                       float* max_out, float* sum_out, float* const* acc_out) {
  if (p.kv_f16)
    attend_chunk_t(q_i, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), kv_stride, blocks, g, h0,
                   group, lo, hi, p, max_out, sum_out, acc_out);
  else
    attend_chunk_t(q_i, static_cast<const float*>(k), static_cast<const float*>(v), kv_stride, blocks, g, h0, group,
                   lo, hi, p, max_out, sum_out, acc_out);
}

bool attention_tiled_avx2(const float* q, int64_t n_q, int64_t q_pos0, const void* k, const void* v,
                          int64_t kv_stride, float* out, const AttentionParams& p, ThreadPool* pool,
                          const int32_t* blocks) {
  if (!attention_avx2_supported(p) || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0) return false;
  const int64_t n_tiles = (n_q + kQueries - 1) / kQueries, n_jobs = n_tiles * p.n_kv_heads;
  // Later tiles see more keys: hand them out first so the last chunks are short.
  auto body = [&](int64_t b0, int64_t b1) {
    thread_local TileBuffers buf;
    for (int64_t job = b0; job < b1; ++job) {
      const int64_t tile = n_tiles - 1 - job / p.n_kv_heads, g = job % p.n_kv_heads;
      const int64_t i0 = tile * kQueries, i1 = std::min(n_q, i0 + kQueries);
      attend_tile(q, i0, i1, q_pos0, k, v, kv_stride, blocks, g, out, p, buf);
    }
  };
  if (pool) pool->parallel_for(n_jobs, body);
  else body(0, n_jobs);
  return true;
}

}  // namespace ballast::cpu
