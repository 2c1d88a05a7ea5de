// One block of 32 activations quantized to int8 with one scale (llama.cpp's Q8 scheme:
// d = max|x| / 127, q = round-to-nearest-even(x / d)), shared by the row kernels'
// quantize_q8a and the packed panels' per-token quantizer. AVX2 (the CPU build's baseline).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace ballast::cpu {

inline int32_t q8_hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// x: (32) -> q: (32) int8 in element order; returns the scale d; lo / hi: the integer sums
// of q[0..15] and q[16..31].
inline float quantize_block32(const float* x, int8_t* q, int32_t* lo, int32_t* hi) {
  const __m256 sign_bit = _mm256_set1_ps(-0.f);
  __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
  __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
  __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_bit, v0), _mm256_andnot_ps(sign_bit, v1)),
                           _mm256_max_ps(_mm256_andnot_ps(sign_bit, v2), _mm256_andnot_ps(sign_bit, v3)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  const float id = amax > 0.f ? 127.f / amax : 0.f;
  const __m256 vid = _mm256_set1_ps(id);
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
  *lo = q8_hsum_i32(_mm256_add_epi32(i0, i1));
  *hi = q8_hsum_i32(_mm256_add_epi32(i2, i3));
  // packs interleave 128-bit lanes; the permute restores element order.
  __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
  return amax / 127.f;
}

}  // namespace ballast::cpu
