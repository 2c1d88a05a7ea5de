// AVX2 integer dot products: weights unpacked to unsigned bytes (offsets folded out
// through the activation block sums), multiplied with _mm256_maddubs_epi16 against
// signed int8 activations, then scaled per 32 values in float.
#include "backend/cpu/dot_kernels.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "backend/cpu/quant.h"
#include "backend/cpu/simd.h"

namespace ballast::cpu {

void quantize_q8a(const float* x, BlockQ8A* y, int64_t n) {
  const __m256 sign_bit = _mm256_set1_ps(-0.f);
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_bit, v0), _mm256_andnot_ps(sign_bit, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign_bit, v2), _mm256_andnot_ps(sign_bit, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.f;
    const float id = amax > 0.f ? 127.f / amax : 0.f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
    const int32_t isum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    // packs interleave 128-bit lanes; the permute restores element order.
    __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), p);
    y[b].d = d;
    y[b].s = d * static_cast<float>(isum);
  }
}

namespace {

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high.
inline __m256i unpack_nibbles16(const uint8_t* q) {
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, byte i = 0x10 where bit i is set.
inline __m256i bits_to_0x10(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i sel = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                         0x0303030303030303);
  // shuffle_epi8 works per 128-bit lane; lane 1 indexes bytes 2,3 of the broadcast word.
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(bits)), sel);
  const __m256i mask = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// Sum of u8 * i8 products as 8 int32 lanes.
inline __m256i dot_u8_i8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline float f16(uint16_t h) { return fp16_to_fp32(h); }

float dot_q4_0(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(w);
  const int64_t nb = cols / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float off = 0.f;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const float d0 = f16(b[i].d), d1 = f16(b[i + 1].d);
    __m256i p0 = dot_u8_i8(unpack_nibbles16(b[i].qs), load32(x[i].qs));
    __m256i p1 = dot_u8_i8(unpack_nibbles16(b[i + 1].qs), load32(x[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * x[i].d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d1 * x[i + 1].d), acc1);
    off += d0 * x[i].s + d1 * x[i + 1].s;
  }
  for (; i < nb; ++i) {
    const float d0 = f16(b[i].d);
    __m256i p0 = dot_u8_i8(unpack_nibbles16(b[i].qs), load32(x[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * x[i].d), acc0);
    off += d0 * x[i].s;
  }
  return hsum(_mm256_add_ps(acc0, acc1)) - 8.f * off;
}

float dot_q4_1(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ4_1*>(w);
  const int64_t nb = cols / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float off = 0.f;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m256i p0 = dot_u8_i8(unpack_nibbles16(b[i].qs), load32(x[i].qs));
    __m256i p1 = dot_u8_i8(unpack_nibbles16(b[i + 1].qs), load32(x[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16(b[i].d) * x[i].d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(f16(b[i + 1].d) * x[i + 1].d), acc1);
    off += f16(b[i].m) * x[i].s + f16(b[i + 1].m) * x[i + 1].s;
  }
  for (; i < nb; ++i) {
    __m256i p0 = dot_u8_i8(unpack_nibbles16(b[i].qs), load32(x[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16(b[i].d) * x[i].d), acc0);
    off += f16(b[i].m) * x[i].s;
  }
  return hsum(_mm256_add_ps(acc0, acc1)) + off;
}

float dot_q5_0(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ5_0*>(w);
  const int64_t nb = cols / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float off = 0.f;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const float d0 = f16(b[i].d), d1 = f16(b[i + 1].d);
    __m256i q0 = _mm256_or_si256(unpack_nibbles16(b[i].qs), bits_to_0x10(b[i].qh));
    __m256i q1 = _mm256_or_si256(unpack_nibbles16(b[i + 1].qs), bits_to_0x10(b[i + 1].qh));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8_i8(q0, load32(x[i].qs))), _mm256_set1_ps(d0 * x[i].d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8_i8(q1, load32(x[i + 1].qs))),
                           _mm256_set1_ps(d1 * x[i + 1].d), acc1);
    off += d0 * x[i].s + d1 * x[i + 1].s;
  }
  for (; i < nb; ++i) {
    const float d0 = f16(b[i].d);
    __m256i q0 = _mm256_or_si256(unpack_nibbles16(b[i].qs), bits_to_0x10(b[i].qh));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8_i8(q0, load32(x[i].qs))), _mm256_set1_ps(d0 * x[i].d), acc0);
    off += d0 * x[i].s;
  }
  return hsum(_mm256_add_ps(acc0, acc1)) - 16.f * off;
}

float dot_q5_1(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ5_1*>(w);
  const int64_t nb = cols / 32;
  __m256 acc = _mm256_setzero_ps();
  float off = 0.f;
  for (int64_t i = 0; i < nb; ++i) {
    __m256i q = _mm256_or_si256(unpack_nibbles16(b[i].qs), bits_to_0x10(b[i].qh));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8_i8(q, load32(x[i].qs))), _mm256_set1_ps(f16(b[i].d) * x[i].d), acc);
    off += f16(b[i].m) * x[i].s;
  }
  return hsum(acc) + off;
}

// Signed x signed through maddubs: |w| (unsigned) times x carrying w's sign.
inline __m256i dot_i8_i8(__m256i w, __m256i x) {
  return dot_u8_i8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

float dot_q8_0(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(w);
  const int64_t nb = cols / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m256i p0 = dot_i8_i8(load32(b[i].qs), load32(x[i].qs));
    __m256i p1 = dot_i8_i8(load32(b[i + 1].qs), load32(x[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16(b[i].d) * x[i].d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(f16(b[i + 1].d) * x[i + 1].d), acc1);
  }
  for (; i < nb; ++i) {
    __m256i p0 = dot_i8_i8(load32(b[i].qs), load32(x[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16(b[i].d) * x[i].d), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

// Two int16 scales broadcast over the low / high 128-bit lanes (16 elements each).
inline __m256i lane_scales(int a, int b) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(b)), _mm_set1_epi16(static_cast<int16_t>(a)));
}

float dot_q4_k(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ4_K*>(w);
  const int64_t nb = cols / 256;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float mins = 0.f;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i, x += 8) {
    const float d = f16(b[i].d), dmin = f16(b[i].dmin);
    uint8_t sc[8], mn[8];
    k_scale_min(b[i].scales, sc, mn);
    float m = 0.f;
    for (int j = 0; j < 8; ++j) m += static_cast<float>(mn[j]) * x[j].s;
    mins += dmin * m;
    for (int c = 0; c < 4; ++c) {
      __m256i q = load32(b[i].qs + 32 * c);
      __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      __m256i p0 = dot_u8_i8(lo, load32(x[2 * c].qs));
      __m256i p1 = dot_u8_i8(hi, load32(x[2 * c + 1].qs));
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d * static_cast<float>(sc[2 * c]) * x[2 * c].d), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1),
                             _mm256_set1_ps(d * static_cast<float>(sc[2 * c + 1]) * x[2 * c + 1].d), acc1);
    }
  }
  return hsum(_mm256_add_ps(acc0, acc1)) - mins;
}

float dot_q5_k(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ5_K*>(w);
  const int64_t nb = cols / 256;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float mins = 0.f;
  const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < nb; ++i, x += 8) {
    const float d = f16(b[i].d), dmin = f16(b[i].dmin);
    uint8_t sc[8], mn[8];
    k_scale_min(b[i].scales, sc, mn);
    float m = 0.f;
    for (int j = 0; j < 8; ++j) m += static_cast<float>(mn[j]) * x[j].s;
    mins += dmin * m;
    const __m256i qh = load32(b[i].qh);
    for (int c = 0; c < 4; ++c) {
      __m256i q = load32(b[i].qs + 32 * c);
      __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
      __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
      __m256i lo = _mm256_or_si256(_mm256_and_si256(q, low4), h0);
      __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), h1);
      __m256i p0 = dot_u8_i8(lo, load32(x[2 * c].qs));
      __m256i p1 = dot_u8_i8(hi, load32(x[2 * c + 1].qs));
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d * static_cast<float>(sc[2 * c]) * x[2 * c].d), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1),
                             _mm256_set1_ps(d * static_cast<float>(sc[2 * c + 1]) * x[2 * c + 1].d), acc1);
    }
  }
  return hsum(_mm256_add_ps(acc0, acc1)) - mins;
}

float dot_q6_k(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(w);
  const int64_t nb = cols / 256;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16(b[i].d);
    for (int n = 0; n < 2; ++n, x += 4) {
      const __m256i ql0 = load32(b[i].ql + 64 * n), ql1 = load32(b[i].ql + 64 * n + 32);
      const __m256i qh = load32(b[i].qh + 32 * n);
      const int8_t* s = b[i].scales + 8 * n;
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, two), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two), 4));
      for (int k = 0; k < 4; ++k) {
        const __m256i y = load32(x[k].qs);
        // (q - 32) . y, per int16 pair, then weighted by the two 16-element scales.
        __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], y), _mm256_maddubs_epi16(k32, y));
        __m256i r = _mm256_madd_epi16(p, lane_scales(s[2 * k], s[2 * k + 1]));
        __m256& acc = (k & 1) ? acc1 : acc0;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r), _mm256_set1_ps(d * x[k].d), acc);
      }
    }
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

float dot_q2_k(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ2_K*>(w);
  const int64_t nb = cols / 256;
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  const __m256i three = _mm256_set1_epi8(3), ones = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16(b[i].d), dmin = f16(b[i].dmin);
    for (int n = 0; n < 2; ++n, x += 4) {
      const __m256i q = load32(b[i].qs + 32 * n);
      for (int s = 0; s < 4; ++s) {
        const int g = n * 8 + s * 2;
        const __m256i y = load32(x[s].qs);
        __m256i qv = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), three);
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(qv, y),
                                      lane_scales(b[i].scales[g] & 0xF, b[i].scales[g + 1] & 0xF));
        __m256i pm = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, y),
                                       lane_scales(b[i].scales[g] >> 4, b[i].scales[g + 1] >> 4));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * x[s].d), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(dmin * x[s].d), accm);
      }
    }
  }
  return hsum(_mm256_sub_ps(acc, accm));
}

float dot_q3_k(const uint8_t* w, const BlockQ8A* x, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ3_K*>(w);
  const int64_t nb = cols / 256;
  __m256 acc = _mm256_setzero_ps();
  const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16(b[i].d);
    int8_t sc[16];
    q3_k_scales(b[i].scales, sc);
    const __m256i hm = load32(b[i].hmask);
    for (int n = 0; n < 2; ++n) {
      const __m256i q = load32(b[i].qs + 32 * n);
      for (int s = 0; s < 4; ++s) {
        const int k = n * 4 + s;
        const __m256i y = load32(x[k].qs);
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), three);
        __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, k), one), 2);
        __m256i qv = _mm256_or_si256(lo, hb);  // q + 4 in [0, 7]
        __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(qv, y), _mm256_maddubs_epi16(four, y));
        __m256i r = _mm256_madd_epi16(p, lane_scales(sc[2 * k], sc[2 * k + 1]));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r), _mm256_set1_ps(d * x[k].d), acc);
      }
    }
    x += 8;
  }
  return hsum(acc);
}

}  // namespace

VecDotQ8A vec_dot_q8a_kernel(DType t) {
  switch (t) {
    case DType::kQ4_0: return dot_q4_0;
    case DType::kQ4_1: return dot_q4_1;
    case DType::kQ5_0: return dot_q5_0;
    case DType::kQ5_1: return dot_q5_1;
    case DType::kQ8_0: return dot_q8_0;
    case DType::kQ2_K: return dot_q2_k;
    case DType::kQ3_K: return dot_q3_k;
    case DType::kQ4_K: return dot_q4_k;
    case DType::kQ5_K: return dot_q5_k;
    case DType::kQ6_K: return dot_q6_k;
    default: return nullptr;
  }
}

float vec_dot_f16(const uint16_t* w, const float* x, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
    acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += fp16_to_fp32(w[i]) * x[i];
  return s;
}

float vec_dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i v = load32(w + i);
    // bf16 -> f32 is a 16-bit left shift: unpack with zeros into the high halves.
    __m256i lo = _mm256_unpacklo_epi16(_mm256_setzero_si256(), v);  // elements 0-3, 8-11
    __m256i hi = _mm256_unpackhi_epi16(_mm256_setzero_si256(), v);  // elements 4-7, 12-15
    __m256 xl = _mm256_permute2f128_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8), 0x20);
    __m256 xh = _mm256_permute2f128_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8), 0x31);
    // xl = x[0..3], x[8..11]; xh = x[4..7], x[12..15]: same lane order as lo / hi.
    acc0 = _mm256_fmadd_ps(_mm256_castsi256_ps(lo), xl, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_castsi256_ps(hi), xh, acc1);
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
  return s;
}

}  // namespace ballast::cpu
