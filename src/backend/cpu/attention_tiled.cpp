// Prompt attention as tiles (AVX-512): the queries of a tile that share a kv head form
// the rows of S = Q K^T over a chunk of 64 keys (K transposed once per chunk and used
// by every row), an online softmax per row, then O += P V, all as register-blocked
// FMA loops. Same contract as cpu::attention (ops.h), which calls it for batches.
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

constexpr int64_t kKeys = 64;      // keys per chunk (4 zmm of scores per row)
constexpr int64_t kQueries = 16;   // queries per tile (times the group's heads = rows)

inline int64_t cache_row_of(const int32_t* blocks, int64_t t) {
  return blocks ? static_cast<int64_t>(blocks[t >> 4]) * 16 + (t & 15) : t;
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          !(std::getenv("BALLAST_CPU_KERNELS") && std::string(std::getenv("BALLAST_CPU_KERNELS")) == "rows");
  return has;
}

}  // namespace

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,fma")
namespace {

// exp for 16 lanes: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial; 0 below -87.3.
inline __m512 exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.3f);
  const __mmask16 small = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  p = _mm512_scalef_ps(p, n);  // p * 2^n
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~small), p);
}

// S[r][0..64) = sum_k Q[r][k] * Kt[k][0..64) for rows [0, RB).
template <int RB>
inline void qk_rows(const float* qr, int64_t d, const float* kt, float* s) {
  __m512 acc[RB][4];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    const float* kk = kt + k * kKeys;
    const __m512 k0 = _mm512_loadu_ps(kk), k1 = _mm512_loadu_ps(kk + 16), k2 = _mm512_loadu_ps(kk + 32),
                 k3 = _mm512_loadu_ps(kk + 48);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512 qv = _mm512_set1_ps(qr[r * d + k]);
      acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(qv, k2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(qv, k3, acc[r][3]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < 4; ++j) _mm512_storeu_ps(s + r * kKeys + 16 * j, acc[r][j]);
}

// O[r][c0 .. c0 + 16 NV) += sum_c P[r][c] * V_c[c0 ..], rows [0, RB), keys [0, nk).
template <int RB, int NV>
inline void pv_rows(const float* p, const float* const* vrows, int64_t nk, int64_t c0, float* o, int64_t d,
                    int64_t ps = kKeys) {
  __m512 acc[RB][NV];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_loadu_ps(o + r * d + c0 + 16 * j);
  for (int64_t c = 0; c < nk; ++c) {
    __m512 v[NV];
    for (int j = 0; j < NV; ++j) v[j] = _mm512_loadu_ps(vrows[c] + c0 + 16 * j);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512 pv = _mm512_set1_ps(p[r * ps + c]);
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(pv, v[j], acc[r][j]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(o + r * d + c0 + 16 * j, acc[r][j]);
}

template <int RB>
void pv_block(const float* p, const float* const* vrows, int64_t nk, float* o, int64_t d, int64_t ps = kKeys) {
  for (int64_t c0 = 0; c0 < d; c0 += 64) {
    switch (std::min<int64_t>(4, (d - c0) / 16)) {
      case 4: pv_rows<RB, 4>(p, vrows, nk, c0, o, d, ps); break;
      case 3: pv_rows<RB, 3>(p, vrows, nk, c0, o, d, ps); break;
      case 2: pv_rows<RB, 2>(p, vrows, nk, c0, o, d, ps); break;
      default: pv_rows<RB, 1>(p, vrows, nk, c0, o, d, ps); break;
    }
  }
}

// r[i] = sum of the lanes of a[i], i < 16.
inline __m512 reduce16(__m512* a) {
  __m512 b[8], c[4];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {
    const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
    c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  const __m512 f01 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xDD));
  const __m512 f23 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(f01, f23, 0x88), _mm512_shuffle_f32x4(f01, f23, 0xDD));
}

// Dot of q (pre-scaled) with key row kr, d = 16 * nv.
inline __m512 dot_lanes(const float* q, const float* kr, int64_t d) {
  __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(q), _mm512_loadu_ps(kr));
  for (int64_t c = 16; c < d; c += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_loadu_ps(kr + c), acc);
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
  b.q.resize(R * d);
  b.o.assign(R * d, 0.f);
  b.s.resize(R * kKeys);
  b.kt.resize(d * kKeys);
  b.m.assign(R, -std::numeric_limits<float>::infinity());
  b.l.assign(R, 0.f);
  b.vrows.resize(kKeys);
  if (p.kv_f16) {
    b.krow.resize(d);
    b.vbuf.resize(kKeys * d);
  }
  // Row r = (query i0 + r / group, head g * group + r % group), pre-scaled.
  for (int64_t r = 0; r < R; ++r) {
    const float* src = q + ((i0 + r / group) * p.n_heads + g * group + r % group) * d;
    for (int64_t c = 0; c < d; ++c) b.q[r * d + c] = src[c] * p.scale;
  }
  auto lo_of = [&](int64_t pos) { return p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0; };
  const int64_t lo = lo_of(q_pos0 + i0), hi = q_pos0 + i1 - 1;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t kc = lo; kc <= hi; kc += kKeys) {
    const int64_t nk = std::min(kKeys, hi - kc + 1);
    // Kt: (d, 64) of this kv head, zero past nk.
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
    for (; r + 4 <= R; r += 4) qk_rows<4>(b.q.data() + r * d, d, b.kt.data(), b.s.data() + r * kKeys);
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
      __m512 mx = _mm512_max_ps(_mm512_max_ps(_mm512_loadu_ps(s), _mm512_loadu_ps(s + 16)),
                                _mm512_max_ps(_mm512_loadu_ps(s + 32), _mm512_loadu_ps(s + 48)));
      const float m_new = std::max(b.m[r], _mm512_reduce_max_ps(mx));
      const float alpha = b.m[r] == ninf ? 0.f : std::exp(b.m[r] - m_new);
      b.m[r] = m_new;
      const __m512 vm = _mm512_set1_ps(m_new);
      __m512 sum = _mm512_setzero_ps();
      for (int j = 0; j < 4; ++j) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + 16 * j), vm));
        _mm512_storeu_ps(s + 16 * j, e);
        sum = _mm512_add_ps(sum, e);
      }
      b.l[r] = b.l[r] * alpha + _mm512_reduce_add_ps(sum);
      if (alpha != 1.f) {
        float* o = b.o.data() + r * d;
        const __m512 va = _mm512_set1_ps(alpha);
        for (int64_t c = 0; c < d; c += 16) _mm512_storeu_ps(o + c, _mm512_mul_ps(va, _mm512_loadu_ps(o + c)));
      }
    }
    for (r = 0; r + 4 <= R; r += 4) pv_block<4>(b.s.data() + r * kKeys, b.vrows.data(), nk, b.o.data() + r * d, d);
    for (; r < R; ++r) pv_block<1>(b.s.data() + r * kKeys, b.vrows.data(), nk, b.o.data() + r * d, d);
  }
  for (int64_t r = 0; r < R; ++r) {
    float* dst = out + ((i0 + r / group) * p.n_heads + g * group + r % group) * d;
    const float inv = b.l[r] > 0.f ? 1.f / b.l[r] : 0.f;
    for (int64_t c = 0; c < d; ++c) dst[c] = b.o[r * d + c] * inv;
  }
}

struct ChunkBuffers {
  std::vector<float> kbuf, vbuf;  // f16 pools: the chunk's K and V rows converted, (n, d)
  std::vector<float> q, s;
  std::vector<const float*> krows, vrows;
};

}  // namespace

// One query's heads [h0, h0 + group) (kv head g) over keys [lo, hi]: unnormalized
// acc[j] (head_dim), max[j], sum[j], as attention.cpp's key-chunk jobs need them.
bool attend_chunk_avx512(const float* q_i, const void* k, const void* v, int64_t kv_stride, const int32_t* blocks,
                         int64_t g, int64_t h0, int64_t group, int64_t lo, int64_t hi, const AttentionParams& p,
                         float* max_out, float* sum_out, float* const* acc_out) {
  const int64_t d = p.head_dim, n = hi - lo + 1;
  thread_local ChunkBuffers b;
  b.q.resize(group * d);
  b.s.resize(group * n);
  b.krows.resize(n);
  b.vrows.resize(n);
  for (int64_t j = 0; j < group; ++j)
    for (int64_t c = 0; c < d; ++c) b.q[j * d + c] = q_i[(h0 + j) * d + c] * p.scale;
  if (p.kv_f16) {
    b.kbuf.resize(n * d);
    b.vbuf.resize(n * d);
  }
  for (int64_t t = 0; t < n; ++t) {
    const int64_t row = cache_row_of(blocks, lo + t);
    b.krows[t] = kv_head_row(k, row, kv_stride, g, d, p.kv_f16, p.kv_f16 ? b.kbuf.data() + t * d : nullptr);
    b.vrows[t] = kv_head_row(v, row, kv_stride, g, d, p.kv_f16, p.kv_f16 ? b.vbuf.data() + t * d : nullptr);
  }
  for (int64_t j = 0; j < group; ++j) {
    const float* qj = b.q.data() + j * d;
    float* s = b.s.data() + j * n;
    int64_t t = 0;
    for (; t + 16 <= n; t += 16) {
      __m512 a[16];
      for (int u = 0; u < 16; ++u) a[u] = dot_lanes(qj, b.krows[t + u], d);
      _mm512_storeu_ps(s + t, reduce16(a));
    }
    for (; t < n; ++t) s[t] = _mm512_reduce_add_ps(dot_lanes(qj, b.krows[t], d));
    if (p.softcap > 0.f)
      for (t = 0; t < n; ++t) s[t] = p.softcap * std::tanh(s[t] / p.softcap);
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (t = 0; t + 16 <= n; t += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + t));
    float m = _mm512_reduce_max_ps(mx);
    for (; t < n; ++t) m = std::max(m, s[t]);
    const __m512 vm = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (t = 0; t < n; t += 16) {
      const __mmask16 mask = n - t >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - t)) - 1u);
      const __m512 e = _mm512_maskz_mov_ps(mask, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, s + t), vm)));
      _mm512_mask_storeu_ps(s + t, mask, e);
      sum = _mm512_add_ps(sum, e);
    }
    max_out[j] = m;
    sum_out[j] = _mm512_reduce_add_ps(sum);
  }
  // acc rows: heads of the group, zeroed, then P V with the heads as register rows.
  thread_local std::vector<float> o;
  o.assign(group * d, 0.f);
  int64_t r = 0;
  for (; r + 4 <= group; r += 4) pv_block<4>(b.s.data() + r * n, b.vrows.data(), n, o.data() + r * d, d, n);
  for (; r + 2 <= group; r += 2) pv_block<2>(b.s.data() + r * n, b.vrows.data(), n, o.data() + r * d, d, n);
  for (; r < group; ++r) pv_block<1>(b.s.data() + r * n, b.vrows.data(), n, o.data() + r * d, d, n);
  for (int64_t j = 0; j < group; ++j) std::copy(o.data() + j * d, o.data() + (j + 1) * d, acc_out[j]);
  return true;
}

#pragma GCC pop_options

bool attention_fast_decode_supported(const AttentionParams& p) {
  return cpu_has_avx512() && p.head_dim % 16 == 0;
}

bool attention_tiled(const float* q, int64_t n_q, int64_t q_pos0, const void* k, const void* v, int64_t kv_stride,
                     float* out, const AttentionParams& p, ThreadPool* pool, const int32_t* blocks) {
  if (!cpu_has_avx512() || p.head_dim % 16 != 0 || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0) return false;
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
