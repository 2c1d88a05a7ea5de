// Dequantizers for GGML block formats. The arithmetic order (d * sc first, then
// d*q - m) mirrors gguf-py so results are bit-identical; FMA contraction is disabled
// in this file for the same reason.
#pragma GCC optimize("fp-contract=off")
#include "core/quant.h"

#include <immintrin.h>

#include <cstring>

#include "core/quant_blocks.h"

namespace ballast {

float fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
uint16_t fp32_to_fp16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

float bf16_to_fp32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

void bf16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_fp32(src[i]);
}

void fp32_to_bf16_row(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_bf16(src[i]);
}

bool dequantize_supported(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ4_0:
    case DType::kQ4_1: case DType::kQ5_0: case DType::kQ5_1: case DType::kQ8_0:
    case DType::kQ2_K: case DType::kQ3_K: case DType::kQ4_K: case DType::kQ5_K:
    case DType::kQ6_K:
      return true;
  }
  return false;
}

namespace {

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high.
inline __m256i nibbles16(const uint8_t* q) {
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, byte i = 0x10 where bit i is set.
inline __m256i bits_to_0x10(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i sel = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(bits)), sel);
  const __m256i mask = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask), _mm256_set1_epi8(0x10));
}

// y[0..31] = scale * float(q[i]) (+ add when kAdd), q: 32 signed bytes. Separate
// multiply and add (no FMA) keep the rounding of the numpy reference.
template <bool kAdd>
inline void emit32(float* y, __m256i q, __m256 scale, __m256 addend) {
  __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int k = 0; k < 4; ++k) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])), scale);
    if constexpr (kAdd) f = _mm256_add_ps(f, addend);
    _mm256_storeu_ps(y + 8 * k, f);
  }
}

// 16 values variant (one 128-bit half).
template <bool kAdd>
inline void emit16(float* y, __m128i q, __m256 scale, __m256 addend) {
  __m128i parts[2] = {q, _mm_srli_si128(q, 8)};
  for (int k = 0; k < 2; ++k) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])), scale);
    if constexpr (kAdd) f = _mm256_add_ps(f, addend);
    _mm256_storeu_ps(y + 8 * k, f);
  }
}

const __m256 kZero = _mm256_setzero_ps();

void deq_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    __m256i q = _mm256_sub_epi8(nibbles16(b[i].qs), _mm256_set1_epi8(8));
    emit32<false>(y, q, _mm256_set1_ps(h2f(b[i].d)), kZero);
  }
}

void deq_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    emit32<true>(y, nibbles16(b[i].qs), _mm256_set1_ps(h2f(b[i].d)), _mm256_set1_ps(h2f(b[i].m)));
  }
}

void deq_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    __m256i q = _mm256_or_si256(nibbles16(b[i].qs), bits_to_0x10(b[i].qh));
    emit32<false>(y, _mm256_sub_epi8(q, _mm256_set1_epi8(16)), _mm256_set1_ps(h2f(b[i].d)), kZero);
  }
}

void deq_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    __m256i q = _mm256_or_si256(nibbles16(b[i].qs), bits_to_0x10(b[i].qh));
    emit32<true>(y, q, _mm256_set1_ps(h2f(b[i].d)), _mm256_set1_ps(h2f(b[i].m)));
  }
}

void deq_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) emit32<false>(y, load32(b[i].qs), _mm256_set1_ps(h2f(b[i].d)), kZero);
}

void deq_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
  const __m256i three = _mm256_set1_epi8(3);
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int n = 0; n < 2; ++n) {
      const __m256i q = load32(b[i].qs + 32 * n);
      for (int s = 0; s < 4; ++s) {
        const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), three);
        for (int half = 0; half < 2; ++half) {
          const int g = n * 8 + s * 2 + half;
          const float dl = d * static_cast<float>(b[i].scales[g] & 0xF);
          const float ml = dmin * static_cast<float>(b[i].scales[g] >> 4);
          __m128i v16 = half ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v);
          emit16<true>(y + g * 16, v16, _mm256_set1_ps(dl), _mm256_set1_ps(-ml));
        }
      }
    }
  }
}

void deq_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
  const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d);
    int8_t sc[16];
    q3_k_scales(b[i].scales, sc);
    const __m256i hm = load32(b[i].hmask);
    for (int n = 0; n < 2; ++n) {
      const __m256i q = load32(b[i].qs + 32 * n);
      for (int s = 0; s < 4; ++s) {
        const int k = n * 4 + s;
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), three);
        __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, k), one), 2);
        __m256i v = _mm256_sub_epi8(_mm256_or_si256(lo, hb), four);
        emit16<false>(y + 32 * k, _mm256_castsi256_si128(v), _mm256_set1_ps(d * static_cast<float>(sc[2 * k])), kZero);
        emit16<false>(y + 32 * k + 16, _mm256_extracti128_si256(v, 1),
                      _mm256_set1_ps(d * static_cast<float>(sc[2 * k + 1])), kZero);
      }
    }
  }
}

void deq_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    uint8_t sc[8], mn[8];
    k_scale_min(b[i].scales, sc, mn);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load32(b[i].qs + 32 * c);
      const __m256i v[2] = {_mm256_and_si256(q, low4), _mm256_and_si256(_mm256_srli_epi16(q, 4), low4)};
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * c + h;
        const float dl = d * static_cast<float>(sc[j]), ml = dmin * static_cast<float>(mn[j]);
        emit32<true>(y + 32 * j, v[h], _mm256_set1_ps(dl), _mm256_set1_ps(-ml));
      }
    }
  }
}

void deq_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    uint8_t sc[8], mn[8];
    k_scale_min(b[i].scales, sc, mn);
    const __m256i qh = load32(b[i].qh);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load32(b[i].qs + 32 * c);
      const __m256i v[2] = {_mm256_and_si256(q, low4), _mm256_and_si256(_mm256_srli_epi16(q, 4), low4)};
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * c + h;
        __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, j), one), 4);
        const float dl = d * static_cast<float>(sc[j]), ml = dmin * static_cast<float>(mn[j]);
        emit32<true>(y + 32 * j, _mm256_or_si256(v[h], hb), _mm256_set1_ps(dl), _mm256_set1_ps(-ml));
      }
    }
  }
}

void deq_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(b[i].d);
    for (int n = 0; n < 2; ++n, y += 128) {
      const __m256i ql0 = load32(b[i].ql + 64 * n), ql1 = load32(b[i].ql + 64 * n + 32);
      const __m256i qh = load32(b[i].qh + 32 * n);
      const __m256i lo[4] = {_mm256_and_si256(ql0, low4), _mm256_and_si256(ql1, low4),
                             _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                             _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4)};
      for (int k = 0; k < 4; ++k) {
        __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m3), 4);
        __m256i v = _mm256_sub_epi8(_mm256_or_si256(lo[k], hi), k32);
        const int8_t* s = b[i].scales + 8 * n + 2 * k;
        emit16<false>(y + 32 * k, _mm256_castsi256_si128(v), _mm256_set1_ps(d * static_cast<float>(s[0])), kZero);
        emit16<false>(y + 32 * k + 16, _mm256_extracti128_si256(v, 1), _mm256_set1_ps(d * static_cast<float>(s[1])),
                      kZero);
      }
    }
  }
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = n / dtype_info(t).block_elems;
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::kF16: fp16_to_fp32_row(static_cast<const uint16_t*>(src), dst, n); return;
    case DType::kBF16: bf16_to_fp32_row(static_cast<const uint16_t*>(src), dst, n); return;
    case DType::kQ4_0: deq_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb); return;
    case DType::kQ4_1: deq_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb); return;
    case DType::kQ5_0: deq_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb); return;
    case DType::kQ5_1: deq_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb); return;
    case DType::kQ8_0: deq_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb); return;
    case DType::kQ2_K: deq_q2_k(static_cast<const BlockQ2_K*>(src), dst, nb); return;
    case DType::kQ3_K: deq_q3_k(static_cast<const BlockQ3_K*>(src), dst, nb); return;
    case DType::kQ4_K: deq_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb); return;
    case DType::kQ5_K: deq_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb); return;
    case DType::kQ6_K: deq_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb); return;
  }
}

}  // namespace ballast
