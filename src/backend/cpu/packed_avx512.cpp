// The AVX-512 VNNI panel kernels (compiled for that ISA here, chosen at run time by
// packed.cpp): one zmm holds 4 consecutive columns of a panel's 16 rows, so a broadcast
// 4-byte group of the activation feeds 16 rows per vpdpbusd.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/packed_kernels.h"

namespace ballast::cpu::panels {

#pragma GCC push_options
// GCC 12 warns about the undefined pass-through operand inside _mm512_cvtph_ps.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,f16c,fma")
namespace {

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
inline __m512 f16x16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 u8x16(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// One panel (16 rows) x NT tokens. q: token 0's codes, stride cols; d/s: token 0's
// block scales, stride cols / 32; s16 stride cols / 16.
template <PanelKind K, int NT>
void panel_tile(const uint8_t* panel, int64_t cols, const int8_t* q, const float* dx, const float* sx,
                const int32_t* s16, float* y, int64_t ldy, __mmask16 store_mask) {
  const int64_t nbx = cols / 32;
  // Wide tiles (8 tokens) have enough independent chains: one int accumulator per token
  // and the min terms folded into accf keep every accumulator in registers.
  constexpr bool kWide = NT > 4;
  __m512 accf[NT], accm[NT];
  for (int t = 0; t < NT; ++t) accf[t] = accm[t] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  if constexpr (K == PanelKind::kU4 || K == PanelKind::kU8) {
    constexpr size_t kBB = K == PanelKind::kU4 ? kU4Block : kU8Block;
    constexpr size_t kScales = K == PanelKind::kU4 ? 256 : 512;
    for (int64_t b = 0; b < nbx; ++b) {
      const uint8_t* blk = panel + b * kBB;
      __m512i al[NT], ah[NT];
      for (int t = 0; t < NT; ++t) al[t] = ah[t] = _mm512_setzero_si512();
      if constexpr (K == PanelKind::kU4) {
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
          const __m512i v = _mm512_load_si512(blk + 64 * g);
          const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            const int8_t* xq = q + t * cols + 32 * b;
            al[t] = _mm512_dpbusd_epi32(al[t], lo, bcast4(xq + 4 * g));
            if constexpr (kWide) al[t] = _mm512_dpbusd_epi32(al[t], hi, bcast4(xq + 16 + 4 * g));
            else ah[t] = _mm512_dpbusd_epi32(ah[t], hi, bcast4(xq + 16 + 4 * g));
          }
        }
      } else {
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
          const __m512i v0 = _mm512_load_si512(blk + 64 * g), v1 = _mm512_load_si512(blk + 256 + 64 * g);
#pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            const int8_t* xq = q + t * cols + 32 * b;
            al[t] = _mm512_dpbusd_epi32(al[t], v0, bcast4(xq + 4 * g));
            if constexpr (kWide) al[t] = _mm512_dpbusd_epi32(al[t], v1, bcast4(xq + 16 + 4 * g));
            else ah[t] = _mm512_dpbusd_epi32(ah[t], v1, bcast4(xq + 16 + 4 * g));
          }
        }
      }
      const __m512 dv = f16x16(blk + kScales), mv = f16x16(blk + kScales + 32);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const __m512 sc = _mm512_mul_ps(dv, _mm512_set1_ps(dx[t * nbx + b]));
        if constexpr (kWide) {
          accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(al[t]), sc, accf[t]);
          accf[t] = _mm512_fmadd_ps(mv, _mm512_set1_ps(sx[t * nbx + b]), accf[t]);
        } else {
          accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(al[t], ah[t])), sc, accf[t]);
          accm[t] = _mm512_fmadd_ps(mv, _mm512_set1_ps(sx[t * nbx + b]), accm[t]);
        }
      }
    }
  } else if constexpr (K == PanelKind::kK4) {
    for (int64_t sb = 0; sb < cols / 256; ++sb) {
      const uint8_t* blk = panel + sb * kK4Block;
      const __m512 dv = f16x16(blk + 2048), dmv = f16x16(blk + 2080);
#pragma GCC unroll 1
      for (int c = 0; c < 4; ++c) {
        __m512i al[NT], ah[NT];
        for (int t = 0; t < NT; ++t) al[t] = ah[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
          const __m512i v = _mm512_load_si512(blk + 512 * c + 64 * g);
          const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            const int8_t* xq = q + t * cols + 256 * sb + 64 * c;
            al[t] = _mm512_dpbusd_epi32(al[t], lo, bcast4(xq + 4 * g));
            ah[t] = _mm512_dpbusd_epi32(ah[t], hi, bcast4(xq + 32 + 4 * g));
          }
        }
        const __m512 sl = _mm512_mul_ps(dv, u8x16(blk + 2112 + 32 * c)), sh = _mm512_mul_ps(dv, u8x16(blk + 2128 + 32 * c));
        const __m512 ml = _mm512_mul_ps(dmv, u8x16(blk + 2240 + 32 * c)), mh = _mm512_mul_ps(dmv, u8x16(blk + 2256 + 32 * c));
        const int64_t jb = 8 * sb + 2 * c;
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(al[t]), _mm512_mul_ps(sl, _mm512_set1_ps(dx[t * nbx + jb])), accf[t]);
          accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ah[t]), _mm512_mul_ps(sh, _mm512_set1_ps(dx[t * nbx + jb + 1])), accf[t]);
          __m512& am = kWide ? accf[t] : accm[t];
          am = _mm512_fnmadd_ps(ml, _mm512_set1_ps(sx[t * nbx + jb]), am);
          am = _mm512_fnmadd_ps(mh, _mm512_set1_ps(sx[t * nbx + jb + 1]), am);
        }
      }
    }
  } else {  // kK6
    const int64_t n16 = cols / 16;
    for (int64_t sb = 0; sb < cols / 256; ++sb) {
      const uint8_t* blk = panel + sb * kK6Block;
      const __m512 dv = _mm512_loadu_ps(reinterpret_cast<const float*>(blk + 4096));
#pragma GCC unroll 2
      for (int j = 0; j < 16; ++j) {
        __m512i ai[NT];
        for (int t = 0; t < NT; ++t) ai[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
          const __m512i v = _mm512_load_si512(blk + 256 * j + 64 * g);
#pragma GCC unroll 8
          for (int t = 0; t < NT; ++t)
            ai[t] = _mm512_dpbusd_epi32(ai[t], v, bcast4(q + t * cols + 256 * sb + 16 * j + 4 * g));
        }
        const __m512 sv = _mm512_mul_ps(
            dv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 4160 + 16 * j)))));
        const int64_t j16 = 16 * sb + j;
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          // codes are u = w + 32: subtract 32 * sum(x) of these 16 columns.
          const __m512i corr = _mm512_set1_epi32(32 * s16[t * n16 + j16]);
          const __m512 p = _mm512_cvtepi32_ps(_mm512_sub_epi32(ai[t], corr));
          accf[t] = _mm512_fmadd_ps(p, _mm512_mul_ps(sv, _mm512_set1_ps(dx[t * nbx + j16 / 2])), accf[t]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    if constexpr (kWide) _mm512_mask_storeu_ps(y + t * ldy, store_mask, accf[t]);
    else _mm512_mask_storeu_ps(y + t * ldy, store_mask, _mm512_add_ps(accf[t], accm[t]));
  }
}

// Panels [p0, p1) x tokens [t0, t1).
template <PanelKind K>
void panels_run(const PackedWeight& w, const Act& a, int64_t t0, int64_t t1, float* y, int64_t ldy, int64_t p0,
                int64_t p1) {
  const int64_t cols = w.cols, nbx = cols / 32, n16 = cols / 16;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = w.panel(p);
    const int64_t r0 = p * kPanelRows;
    const int64_t valid = std::min<int64_t>(kPanelRows, w.rows - r0);
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
    for (int64_t t = t0; t < t1;) {
      const int8_t* q = a.q.data() + t * cols;
      const float *dx = a.d.data() + t * nbx, *sx = a.s.data() + t * nbx;
      const int32_t* s16 = a.sum16.data() + t * n16;
      float* yt = y + t * ldy + r0;
      switch (std::min<int64_t>(8, t1 - t)) {
        case 8: panel_tile<K, 8>(panel, cols, q, dx, sx, s16, yt, ldy, mask); t += 8; break;
        case 7: case 6: case 5:
        case 4: panel_tile<K, 4>(panel, cols, q, dx, sx, s16, yt, ldy, mask); t += 4; break;
        case 3: panel_tile<K, 3>(panel, cols, q, dx, sx, s16, yt, ldy, mask); t += 3; break;
        case 2: panel_tile<K, 2>(panel, cols, q, dx, sx, s16, yt, ldy, mask); t += 2; break;
        default: panel_tile<K, 1>(panel, cols, q, dx, sx, s16, yt, ldy, mask); t += 1; break;
      }
    }
  }
}

}  // namespace

void run_avx512(const PackedWeight& w, const Act& a, int64_t t0, int64_t t1, float* y, int64_t ldy, int64_t p0,
                int64_t p1) {
  switch (w.kind) {
    case PanelKind::kU4: panels_run<PanelKind::kU4>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kU8: panels_run<PanelKind::kU8>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kK4: panels_run<PanelKind::kK4>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kK6: panels_run<PanelKind::kK6>(w, a, t0, t1, y, ldy, p0, p1); break;
  }
}

#pragma GCC diagnostic pop
#pragma GCC pop_options


}  // namespace ballast::cpu::panels
