// Panel repacking (scalar, at load) and the AVX-512 VNNI panel kernels (compiled for
// that ISA here and chosen at run time). Every format computes
//   y[r] = sum over blocks of (d_w[r] * d_x) * dot(u[r], x_q) + min terms,
// with u unsigned weight codes and x_q the signed 8-bit activation of the block.
#include "backend/cpu/packed.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/quant.h"
#include "core/quant_blocks.h"
#include "backend/cpu/q8_block.h"

namespace ballast::cpu {
namespace {

// Per-block byte layouts of one 16-row panel (see PanelKind):
//   U4: [4 groups][16 rows][4 bytes] nibbles (low: column 4g+i, high: 16+4g+i), d[16] f16, m[16] f16
//   U8: [8 groups][16 rows][4 bytes] codes, d[16] f16, m[16] f16
//   K4 (256 columns): [4 chunks][8 groups][16 rows][4 bytes] nibbles (low: column 64c+4g+i,
//       high: 64c+32+4g+i), d[16] f16, dmin[16] f16, sc[8][16] u8, mn[8][16] u8
//   K6 (256 columns): [16 sub-blocks][4 groups][16 rows][4 bytes] codes, d[16] f32, sc[16][16] i8
constexpr size_t kU4Block = 256 + 64, kU8Block = 512 + 64, kK4Block = 2048 + 64 + 256, kK6Block = 4096 + 64 + 256;

size_t block_bytes(PanelKind k) {
  switch (k) {
    case PanelKind::kU4: return kU4Block;
    case PanelKind::kU8: return kU8Block;
    case PanelKind::kK4: return kK4Block;
    case PanelKind::kK6: return kK6Block;
  }
  return 0;
}
int64_t block_cols(PanelKind k) { return k == PanelKind::kK4 || k == PanelKind::kK6 ? 256 : 32; }

bool kind_of(DType t, PanelKind* k) {
  switch (t) {
    case DType::kQ4_0: case DType::kQ4_1: *k = PanelKind::kU4; return true;
    case DType::kQ5_0: case DType::kQ5_1: case DType::kQ8_0: *k = PanelKind::kU8; return true;
    case DType::kQ4_K: *k = PanelKind::kK4; return true;
    case DType::kQ6_K: *k = PanelKind::kK6; return true;
    default: return false;
  }
}

// f16 of v when v is exactly representable (and finite), else false.
bool exact_f16(float v, uint16_t* out) {
  const uint16_t h = fp32_to_fp16(v);
  if (fp16_to_fp32(h) != v) return false;
  *out = h;
  return true;
}

// Writes row r (0..15) of one panel block from the source block(s) at src; false when
// a derived scale is not exact in f16.
bool pack_u4(DType t, const uint8_t* src, uint8_t* blk, int r) {
  uint16_t* d = reinterpret_cast<uint16_t*>(blk + 256);
  uint16_t* m = d + 16;
  const uint8_t* qs;
  if (t == DType::kQ4_0) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(src);
    d[r] = b->d;
    if (!exact_f16(-8.f * fp16_to_fp32(b->d), &m[r])) return false;
    qs = b->qs;
  } else {
    const auto* b = reinterpret_cast<const BlockQ4_1*>(src);
    d[r] = b->d;
    m[r] = b->m;
    qs = b->qs;
  }
  for (int g = 0; g < 4; ++g) std::memcpy(blk + 64 * g + 4 * r, qs + 4 * g, 4);
  return true;
}

bool pack_u8(DType t, const uint8_t* src, uint8_t* blk, int r) {
  uint16_t* d = reinterpret_cast<uint16_t*>(blk + 512);
  uint16_t* m = d + 16;
  uint8_t u[32];
  if (t == DType::kQ8_0) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(src);
    d[r] = b->d;
    if (!exact_f16(-128.f * fp16_to_fp32(b->d), &m[r])) return false;
    for (int j = 0; j < 32; ++j) u[j] = static_cast<uint8_t>(b->qs[j] + 128);
  } else {
    // Q5_0 / Q5_1 share the code layout: nibble | bit j of qh << 4.
    const uint8_t *qh, *qs;
    if (t == DType::kQ5_0) {
      const auto* b = reinterpret_cast<const BlockQ5_0*>(src);
      d[r] = b->d;
      if (!exact_f16(-16.f * fp16_to_fp32(b->d), &m[r])) return false;
      qh = b->qh;
      qs = b->qs;
    } else {
      const auto* b = reinterpret_cast<const BlockQ5_1*>(src);
      d[r] = b->d;
      m[r] = b->m;
      qh = b->qh;
      qs = b->qs;
    }
    uint32_t bits;
    std::memcpy(&bits, qh, 4);
    for (int j = 0; j < 16; ++j) {
      u[j] = static_cast<uint8_t>((qs[j] & 0xF) | (((bits >> j) & 1u) << 4));
      u[j + 16] = static_cast<uint8_t>((qs[j] >> 4) | (((bits >> (j + 16)) & 1u) << 4));
    }
  }
  for (int g = 0; g < 8; ++g) std::memcpy(blk + 64 * g + 4 * r, u + 4 * g, 4);
  return true;
}

void pack_k4(const uint8_t* src, uint8_t* blk, int r) {
  const auto* b = reinterpret_cast<const BlockQ4_K*>(src);
  uint16_t* d = reinterpret_cast<uint16_t*>(blk + 2048);
  d[r] = b->d;
  d[16 + r] = b->dmin;
  uint8_t sc[8], mn[8];
  k_scale_min(b->scales, sc, mn);
  for (int j = 0; j < 8; ++j) {
    blk[2112 + 16 * j + r] = sc[j];
    blk[2240 + 16 * j + r] = mn[j];
  }
  for (int c = 0; c < 4; ++c)
    for (int g = 0; g < 8; ++g) std::memcpy(blk + 512 * c + 64 * g + 4 * r, b->qs + 32 * c + 4 * g, 4);
}

void pack_k6(const uint8_t* src, uint8_t* blk, int r) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(src);
  uint8_t u[256];
  for (int n = 0; n < 2; ++n)
    for (int l = 0; l < 32; ++l) {
      const uint8_t ql0 = b->ql[64 * n + l], ql1 = b->ql[64 * n + l + 32], qh = b->qh[32 * n + l];
      u[128 * n + l] = static_cast<uint8_t>((ql0 & 0xF) | ((qh & 3) << 4));
      u[128 * n + l + 32] = static_cast<uint8_t>((ql1 & 0xF) | (((qh >> 2) & 3) << 4));
      u[128 * n + l + 64] = static_cast<uint8_t>((ql0 >> 4) | (((qh >> 4) & 3) << 4));
      u[128 * n + l + 96] = static_cast<uint8_t>((ql1 >> 4) | (((qh >> 6) & 3) << 4));
    }
  for (int j = 0; j < 16; ++j)
    for (int g = 0; g < 4; ++g) std::memcpy(blk + 256 * j + 64 * g + 4 * r, u + 16 * j + 4 * g, 4);
  float* d = reinterpret_cast<float*>(blk + 4096);
  d[r] = fp16_to_fp32(b->d);
  for (int j = 0; j < 16; ++j) blk[4160 + 16 * j + r] = static_cast<uint8_t>(b->scales[j]);
}

std::atomic<bool> g_packed_disabled{false};

}  // namespace

bool packable(DType t) {
  PanelKind k;
  return kind_of(t, &k);
}

void set_packed_disabled(bool disabled) { g_packed_disabled.store(disabled); }

bool packed_supported() {
  // BALLAST_CPU_KERNELS=rows forces the row kernels (comparisons, machines to debug).
  static const bool has = !(std::getenv("BALLAST_CPU_KERNELS") && std::string(std::getenv("BALLAST_CPU_KERNELS")) == "rows") &&
                          __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                          __builtin_cpu_supports("avx512dq");
  return has && !g_packed_disabled.load(std::memory_order_relaxed);
}

bool pack_weight(const std::vector<WeightView>& parts, PackedWeight& out, ThreadPool* pool) {
  if (parts.empty()) return false;
  const DType t = parts[0].dtype;
  const int64_t cols = parts[0].cols;
  PanelKind kind;
  if (!kind_of(t, &kind)) return false;
  int64_t rows = 0;
  for (const auto& p : parts) {
    if (p.dtype != t || p.cols != cols || !p.data) return false;
    rows += p.rows;
  }
  const int64_t bc = block_cols(kind);
  if (rows == 0 || cols % bc != 0) return false;
  // Row index -> source row pointer across the stacked parts.
  std::vector<const uint8_t*> row_ptr(static_cast<size_t>(rows));
  {
    int64_t r = 0;
    for (const auto& p : parts)
      for (int64_t i = 0; i < p.rows; ++i) row_ptr[r++] = p.row(i);
  }
  const int64_t nb = cols / bc;
  const size_t bb = block_bytes(kind), src_bb = dtype_info(t).block_bytes;
  // Source blocks per panel block: K formats' super-block is one GGUF block.
  out.kind = kind;
  out.src = t;
  out.rows = rows;
  out.cols = cols;
  out.panel_bytes = bb * static_cast<size_t>(nb);
  const int64_t n_panels = out.panels();
  const size_t total = out.panel_bytes * static_cast<size_t>(n_panels);
  void* mem = std::aligned_alloc(64, (total + 63) / 64 * 64);
  if (!mem) return false;
  out.data = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(mem), [](uint8_t* p) { std::free(p); });
  std::atomic<bool> ok{true};
  auto body = [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      uint8_t* panel = out.data.get() + p * out.panel_bytes;
      std::memset(panel, 0, out.panel_bytes);  // padding rows: zero codes and scales
      for (int r = 0; r < kPanelRows; ++r) {
        const int64_t row = p * kPanelRows + r;
        if (row >= rows) break;
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* src = row_ptr[row] + b * src_bb;
          uint8_t* blk = panel + b * bb;
          switch (kind) {
            case PanelKind::kU4: if (!pack_u4(t, src, blk, r)) ok = false; break;
            case PanelKind::kU8: if (!pack_u8(t, src, blk, r)) ok = false; break;
            case PanelKind::kK4: pack_k4(src, blk, r); break;
            case PanelKind::kK6: pack_k6(src, blk, r); break;
          }
        }
      }
    }
  };
  if (pool && n_panels >= 8) pool->parallel_for(n_panels, body, 1);
  else body(0, n_panels);
  if (!ok) out.data.reset();
  return ok;
}

// ---------------------------------------------------------------------------------
// Activations: per token, int8 codes (cols), per 32 columns d and s = d * sum(codes),
// per 16 columns the integer sum (for K6's offset).
namespace {

struct Act {
  int64_t cols = 0;
  std::vector<int8_t> q;       // (n, cols)
  std::vector<float> d, s;     // (n, cols / 32)
  std::vector<int32_t> sum16;  // (n, cols / 16)
  void resize(int64_t n, int64_t c) {
    cols = c;
    if (q.size() < static_cast<size_t>(n * c)) q.resize(n * c);
    if (d.size() < static_cast<size_t>(n * c / 32)) {
      d.resize(n * c / 32);
      s.resize(n * c / 32);
    }
    if (sum16.size() < static_cast<size_t>(n * c / 16)) sum16.resize(n * c / 16);
  }
};

// Token t of x: (cols) -> a's row t. Same rounding as quantize_q8a (nearest even).
void quantize_token(const float* x, Act& a, int64_t t) {
  const int64_t cols = a.cols, nb = cols / 32;
  int8_t* q = a.q.data() + t * cols;
  float* dd = a.d.data() + t * nb;
  float* ss = a.s.data() + t * nb;
  int32_t* s16 = a.sum16.data() + t * (cols / 16);
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    int32_t lo, hi;
    const float d = quantize_block32(x, q + 32 * b, &lo, &hi);
    dd[b] = d;
    ss[b] = d * static_cast<float>(lo + hi);
    s16[2 * b] = lo;
    s16[2 * b + 1] = hi;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------
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

void run_panels(const PackedWeight& w, const Act& a, int64_t t0, int64_t t1, float* y, int64_t ldy, int64_t p0,
                int64_t p1) {
  switch (w.kind) {
    case PanelKind::kU4: panels_run<PanelKind::kU4>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kU8: panels_run<PanelKind::kU8>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kK4: panels_run<PanelKind::kK4>(w, a, t0, t1, y, ldy, p0, p1); break;
    case PanelKind::kK6: panels_run<PanelKind::kK6>(w, a, t0, t1, y, ldy, p0, p1); break;
  }
}

}  // namespace
#pragma GCC diagnostic pop
#pragma GCC pop_options

void packed_matmul(const PackedWeight& w, const float* x, int64_t n, float* y, int64_t ldy, ThreadPool* pool) {
  if (n <= 0 || w.rows <= 0) return;
  thread_local Act act;
  Act& a = act;
  a.resize(n, w.cols);
  if (pool && n >= 8) {
    pool->parallel_for(n, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) quantize_token(x + t * w.cols, a, t);
    });
  } else {
    for (int64_t t = 0; t < n; ++t) quantize_token(x + t * w.cols, a, t);
  }
  const int64_t np = w.panels();
  // Large batches: tasks are (token tile, panel group) so a panel group stays in L1/L2
  // while its token tile streams.
  constexpr int64_t kTokTile = 64, kPanelGroup = 4;
  if (!pool) {
    run_panels(w, a, 0, n, y, ldy, 0, np);
  } else if (n <= kTokTile) {
    pool->parallel_for(np, [&](int64_t p0, int64_t p1) { run_panels(w, a, 0, n, y, ldy, p0, p1); });
  } else {
    const int64_t n_tt = (n + kTokTile - 1) / kTokTile, n_pg = (np + kPanelGroup - 1) / kPanelGroup;
    pool->parallel_for(n_tt * n_pg, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t tt = i / n_pg, pg = i % n_pg;
        run_panels(w, a, tt * kTokTile, std::min(n, (tt + 1) * kTokTile), y, ldy, pg * kPanelGroup,
                   std::min(np, (pg + 1) * kPanelGroup));
      }
    });
  }
}

}  // namespace ballast::cpu
