// Dequantizers for GGML block formats. The arithmetic order (d * sc first, then
// d*q - m) mirrors gguf-py so results are bit-identical; FMA contraction is disabled
// in this file for the same reason.
#pragma GCC optimize("fp-contract=off")
#include "backend/cpu/quant.h"

#include <immintrin.h>

#include <cstring>

#include "backend/cpu/quant_blocks.h"

namespace ballast::cpu {

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

void deq_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((b[i].qs[j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void deq_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(b[i].qs[j] & 0xF) + m;
      y[j + 16] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
    }
  }
}

void deq_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      int lo = (b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      int hi = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

void deq_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      int lo = (b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      int hi = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

void deq_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void deq_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int n = 0; n < 2; ++n) {
      for (int s = 0; s < 4; ++s) {
        for (int half = 0; half < 2; ++half) {
          const int g = n * 8 + s * 2 + half;
          const float dl = d * static_cast<float>(b[i].scales[g] & 0xF);
          const float ml = dmin * static_cast<float>(b[i].scales[g] >> 4);
          float* out = y + g * 16;
          for (int l = 0; l < 16; ++l) {
            int q = (b[i].qs[n * 32 + half * 16 + l] >> (2 * s)) & 3;
            out[l] = dl * static_cast<float>(q) - ml;
          }
        }
      }
    }
  }
}

void deq_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d);
    int8_t sc[16];
    q3_k_scales(b[i].scales, sc);
    for (int e = 0; e < 256; ++e) {
      const int n = e / 128, s = (e % 128) / 32, l = e % 32;
      int q = (b[i].qs[n * 32 + l] >> (2 * s)) & 3;
      if (!((b[i].hmask[l] >> (e / 32)) & 1)) q -= 4;
      const float dl = d * static_cast<float>(sc[e / 16]);
      y[e] = dl * static_cast<float>(q);
    }
  }
}

void deq_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    uint8_t sc[8], mn[8];
    k_scale_min(b[i].scales, sc, mn);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(sc[j]);
      const float ml = dmin * static_cast<float>(mn[j]);
      const uint8_t* q = b[i].qs + (j / 2) * 32;
      const int shift = (j & 1) * 4;
      for (int l = 0; l < 32; ++l) y[j * 32 + l] = dl * static_cast<float>((q[l] >> shift) & 0xF) - ml;
    }
  }
}

void deq_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    uint8_t sc[8], mn[8];
    k_scale_min(b[i].scales, sc, mn);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(sc[j]);
      const float ml = dmin * static_cast<float>(mn[j]);
      const uint8_t* q = b[i].qs + (j / 2) * 32;
      const int shift = (j & 1) * 4;
      for (int l = 0; l < 32; ++l) {
        int v = ((q[l] >> shift) & 0xF) | (((b[i].qh[l] >> j) & 1) << 4);
        y[j * 32 + l] = dl * static_cast<float>(v) - ml;
      }
    }
  }
}

void deq_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256) {
    const float d = h2f(b[i].d);
    for (int n = 0; n < 2; ++n) {
      for (int e = 0; e < 128; ++e) {
        int lo = (b[i].ql[n * 64 + e % 64] >> (4 * (e / 64))) & 0xF;
        int hi = (b[i].qh[n * 32 + e % 32] >> (2 * (e / 32))) & 3;
        const float dl = d * static_cast<float>(b[i].scales[n * 8 + e / 16]);
        y[n * 128 + e] = dl * static_cast<float>((lo | (hi << 4)) - 32);
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

}  // namespace ballast::cpu
