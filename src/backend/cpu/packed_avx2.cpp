// The AVX2 panel kernels (the build's baseline ISA; chosen by packed.cpp where AVX-512
// VNNI is absent): the 64-byte group rows of a panel are read as two 32-byte halves of
// 8 rows x 4 columns, and a broadcast 4-byte group of the activation feeds 8 rows per
// vpmaddubsw (u8 x s8 -> pairs of i16). The i16 pairs are summed in i16 for as many
// groups as cannot overflow (codes <= 15: 8 groups, 2 x 15 x 127 x 8 = 30480), then
// widened once with vpmaddwd. Q8_0's codes (up to 255) would saturate vpmaddubsw, so its
// kernel uses the signed codes with the abs/sign trick.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/packed_kernels.h"

namespace ballast::cpu::panels {
namespace {

constexpr int kHalfRows = 8;

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
inline __m256 f16x8(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 u8x8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256 i8x8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256i load32(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
// i16 pairs -> i32 per row (each row's 4 columns summed).
inline __m256i widen(__m256i a16) { return _mm256_madd_epi16(a16, _mm256_set1_epi16(1)); }

enum class Codes { kU4, kU5, kQ8, kK4, kK6 };

// One half panel (8 rows: h = 0 or 1) x NT tokens over all columns. q: token 0's codes,
// stride cols; dx / sx: token 0's block scales, stride cols / 32; s16 stride cols / 16.
// y: token 0's output for the half's first row, stride ldy; `valid` rows are stored.
template <Codes C, int NT>
void half_tile(const uint8_t* panel, int64_t cols, int h, const int8_t* q, const float* dx, const float* sx,
               const int32_t* s16, float* y, int64_t ldy, int valid) {
  const int64_t nbx = cols / 32;
  const size_t ho = 32 * static_cast<size_t>(h);  // byte offset of the half in a group row
  const size_t so = 16 * static_cast<size_t>(h);  // byte offset of the half in a 16-entry f16 row
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  if constexpr (C == Codes::kU4) {
    for (int64_t b = 0; b < nbx; ++b) {
      const uint8_t* blk = panel + b * kU4Block;
      __m256i a16[NT];
      for (int t = 0; t < NT; ++t) a16[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        const __m256i v = load32(blk + 64 * g + ho);
        const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) {
          const int8_t* xq = q + t * cols + 32 * b;
          a16[t] = _mm256_add_epi16(a16[t], _mm256_maddubs_epi16(lo, bcast4(xq + 4 * g)));
          a16[t] = _mm256_add_epi16(a16[t], _mm256_maddubs_epi16(hi, bcast4(xq + 16 + 4 * g)));
        }
      }
      const __m256 dv = f16x8(blk + 256 + so), mv = f16x8(blk + 288 + so);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(widen(a16[t])), _mm256_mul_ps(dv, _mm256_set1_ps(dx[t * nbx + b])), acc[t]);
        acc[t] = _mm256_fmadd_ps(mv, _mm256_set1_ps(sx[t * nbx + b]), acc[t]);
      }
    }
  } else if constexpr (C == Codes::kU5 || C == Codes::kQ8) {
    // U8 panels: Q5_0/Q5_1 codes <= 31 (4 groups per i16 sum: 4 x 2 x 31 x 127 = 31496);
    // Q8_0 codes u = q + 128 are read as q (xor 0x80) with |q| x sign: its min term
    // m = -128 d cancels the +128 offset, so it is left out.
    for (int64_t b = 0; b < nbx; ++b) {
      const uint8_t* blk = panel + b * kU8Block;
      __m256i a32[NT];
      for (int t = 0; t < NT; ++t) a32[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        __m256i a16[NT];
        for (int t = 0; t < NT; ++t) a16[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
          const __m256i v = load32(blk + 256 * half + 64 * g + ho);
          if constexpr (C == Codes::kQ8) {
            const __m256i sv = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
            const __m256i av = _mm256_abs_epi8(sv);
#pragma GCC unroll 4
            for (int t = 0; t < NT; ++t) {
              const __m256i x = _mm256_sign_epi8(bcast4(q + t * cols + 32 * b + 16 * half + 4 * g), sv);
              // one group: 2 x 128 x 127 = 32512 fits; widen per group.
              a32[t] = _mm256_add_epi32(a32[t], widen(_mm256_maddubs_epi16(av, x)));
            }
          } else {
#pragma GCC unroll 4
            for (int t = 0; t < NT; ++t)
              a16[t] = _mm256_add_epi16(a16[t], _mm256_maddubs_epi16(v, bcast4(q + t * cols + 32 * b + 16 * half + 4 * g)));
          }
        }
        if constexpr (C == Codes::kU5)
          for (int t = 0; t < NT; ++t) a32[t] = _mm256_add_epi32(a32[t], widen(a16[t]));
      }
      const __m256 dv = f16x8(blk + 512 + so);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a32[t]), _mm256_mul_ps(dv, _mm256_set1_ps(dx[t * nbx + b])), acc[t]);
      if constexpr (C == Codes::kU5) {
        const __m256 mv = f16x8(blk + 544 + so);
        for (int t = 0; t < NT; ++t) acc[t] = _mm256_fmadd_ps(mv, _mm256_set1_ps(sx[t * nbx + b]), acc[t]);
      }
    }
  } else if constexpr (C == Codes::kK4) {
    const size_t ko = 8 * static_cast<size_t>(h);  // offset in the 16-entry u8 scale rows
    for (int64_t sb = 0; sb < cols / 256; ++sb) {
      const uint8_t* blk = panel + sb * kK4Block;
      const __m256 dv = f16x8(blk + 2048 + so), dmv = f16x8(blk + 2080 + so);
#pragma GCC unroll 1
      for (int j = 0; j < 8; ++j) {  // 32-column sub-block j: chunk j / 2, low (even) or high nibbles
        const int c = j / 2, shift = 4 * (j % 2);
        __m256i a16[NT];
        for (int t = 0; t < NT; ++t) a16[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
          const __m256i v = load32(blk + 512 * c + 64 * g + ho);
          const __m256i u = _mm256_and_si256(_mm256_srli_epi16(v, shift), low4);
#pragma GCC unroll 4
          for (int t = 0; t < NT; ++t)
            a16[t] = _mm256_add_epi16(a16[t], _mm256_maddubs_epi16(u, bcast4(q + t * cols + 256 * sb + 32 * j + 4 * g)));
        }
        const __m256 sv = _mm256_mul_ps(dv, u8x8(blk + 2112 + 16 * j + ko));
        const __m256 mv = _mm256_mul_ps(dmv, u8x8(blk + 2240 + 16 * j + ko));
        const int64_t jb = 8 * sb + j;
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) {
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(widen(a16[t])), _mm256_mul_ps(sv, _mm256_set1_ps(dx[t * nbx + jb])), acc[t]);
          acc[t] = _mm256_fnmadd_ps(mv, _mm256_set1_ps(sx[t * nbx + jb]), acc[t]);
        }
      }
    }
  } else {  // kK6: codes <= 63, 2 groups per i16 sum (2 x 2 x 63 x 127 = 32004)
    const int64_t n16 = cols / 16;
    const size_t ko = 8 * static_cast<size_t>(h);
    for (int64_t sb = 0; sb < cols / 256; ++sb) {
      const uint8_t* blk = panel + sb * kK6Block;
      const __m256 dv = _mm256_loadu_ps(reinterpret_cast<const float*>(blk + 4096) + 8 * h);
#pragma GCC unroll 2
      for (int j = 0; j < 16; ++j) {
        const uint8_t* gp = blk + 256 * j + ho;
        const __m256i v0 = load32(gp), v1 = load32(gp + 64), v2 = load32(gp + 128), v3 = load32(gp + 192);
        const __m256 sv = _mm256_mul_ps(dv, i8x8(blk + 4160 + 16 * j + ko));
        const int64_t j16 = 16 * sb + j;
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) {
          const int8_t* xq = q + t * cols + 256 * sb + 16 * j;
          const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(v0, bcast4(xq)), _mm256_maddubs_epi16(v1, bcast4(xq + 4)));
          const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(v2, bcast4(xq + 8)), _mm256_maddubs_epi16(v3, bcast4(xq + 12)));
          // codes are u = w + 32: subtract 32 * sum(x) of these 16 columns.
          const __m256i p = _mm256_sub_epi32(_mm256_add_epi32(widen(p01), widen(p23)), _mm256_set1_epi32(32 * s16[t * n16 + j16]));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(sv, _mm256_set1_ps(dx[t * nbx + j16 / 2])), acc[t]);
        }
      }
    }
  }
  if (valid == kHalfRows) {
    for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
  } else {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int t = 0; t < NT; ++t) _mm256_maskstore_ps(y + t * ldy, mask, acc[t]);
  }
}

// Panels [p0, p1) x tokens [t0, t1).
template <Codes C>
void panels_run(const PackedWeight& w, const Act& a, int64_t t0, int64_t t1, float* y, int64_t ldy, int64_t p0,
                int64_t p1) {
  const int64_t cols = w.cols, nbx = cols / 32, n16 = cols / 16;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = w.panel(p);
    for (int h = 0; h < 2; ++h) {
      const int64_t r0 = p * kPanelRows + kHalfRows * h;
      const int valid = static_cast<int>(std::min<int64_t>(kHalfRows, w.rows - r0));
      if (valid <= 0) break;
      for (int64_t t = t0; t < t1;) {
        const int8_t* q = a.q.data() + t * cols;
        const float *dx = a.d.data() + t * nbx, *sx = a.s.data() + t * nbx;
        const int32_t* s16 = a.sum16.data() + t * n16;
        float* yt = y + t * ldy + r0;
        switch (std::min<int64_t>(4, t1 - t)) {
          case 4: half_tile<C, 4>(panel, cols, h, q, dx, sx, s16, yt, ldy, valid); t += 4; break;
          case 3: half_tile<C, 3>(panel, cols, h, q, dx, sx, s16, yt, ldy, valid); t += 3; break;
          case 2: half_tile<C, 2>(panel, cols, h, q, dx, sx, s16, yt, ldy, valid); t += 2; break;
          default: half_tile<C, 1>(panel, cols, h, q, dx, sx, s16, yt, ldy, valid); t += 1; break;
        }
      }
    }
  }
}

}  // namespace

void run_avx2(const PackedWeight& w, const Act& a, int64_t t0, int64_t t1, float* y, int64_t ldy, int64_t p0,
              int64_t p1) {
  switch (w.kind) {
    case PanelKind::kU4: panels_run<Codes::kU4>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kU8:
      if (w.src == DType::kQ8_0) panels_run<Codes::kQ8>(w, a, t0, t1, y, ldy, p0, p1);
      else panels_run<Codes::kU5>(w, a, t0, t1, y, ldy, p0, p1);
      break;
    case PanelKind::kK4: panels_run<Codes::kK4>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kK6: panels_run<Codes::kK6>(w, a, t0, t1, y, ldy, p0, p1); break;
  }
}

}  // namespace ballast::cpu::panels
