// Panel repacking (scalar, at load), activation quantization and the choice of kernel
// (packed_avx512.cpp, packed_avx2.cpp) at run time. Every format computes
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
#include "backend/cpu/packed_kernels.h"
#include "backend/cpu/q8_block.h"

namespace ballast::cpu {
namespace {

using panels::kU4Block;
using panels::kU8Block;
using panels::kK4Block;
using panels::kK6Block;

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

std::atomic<uint8_t> g_isa_limit{static_cast<uint8_t>(PanelIsa::kAvx512)};

PanelIsa cpu_panel_isa() {
  const char* env = std::getenv("BALLAST_CPU_KERNELS");
  const std::string mode = env ? env : "";
  if (mode == "rows") return PanelIsa::kNone;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                      __builtin_cpu_supports("avx512dq");
  if (avx512 && mode != "avx2") return PanelIsa::kAvx512;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return avx2 ? PanelIsa::kAvx2 : PanelIsa::kNone;
}

}  // namespace

bool packable(DType t) {
  PanelKind k;
  return kind_of(t, &k);
}

void set_packed_isa_limit(PanelIsa max) { g_isa_limit.store(static_cast<uint8_t>(max)); }

PanelIsa packed_isa() {
  static const PanelIsa cpu = cpu_panel_isa();
  const auto limit = static_cast<PanelIsa>(g_isa_limit.load(std::memory_order_relaxed));
  return static_cast<uint8_t>(limit) < static_cast<uint8_t>(cpu) ? limit : cpu;
}

const char* panel_isa_name(PanelIsa isa) {
  switch (isa) {
    case PanelIsa::kAvx512: return "avx512-vnni";
    case PanelIsa::kAvx2: return "avx2";
    case PanelIsa::kNone: break;
  }
  return "rows";
}

bool packed_supported() { return packed_isa() != PanelIsa::kNone; }

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

using panels::Act;

void resize(Act& a, int64_t n, int64_t c) {
  a.cols = c;
  if (a.q.size() < static_cast<size_t>(n * c)) a.q.resize(n * c);
  if (a.d.size() < static_cast<size_t>(n * c / 32)) {
    a.d.resize(n * c / 32);
    a.s.resize(n * c / 32);
  }
  if (a.sum16.size() < static_cast<size_t>(n * c / 16)) a.sum16.resize(n * c / 16);
}

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

void packed_matmul(const PackedWeight& w, const float* x, int64_t n, float* y, int64_t ldy, ThreadPool* pool) {
  if (n <= 0 || w.rows <= 0) return;
  thread_local Act act;
  Act& a = act;
  resize(a, n, w.cols);
  if (pool && n >= 8) {
    pool->parallel_for(n, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) quantize_token(x + t * w.cols, a, t);
    });
  } else {
    for (int64_t t = 0; t < n; ++t) quantize_token(x + t * w.cols, a, t);
  }
  const auto run = packed_isa() == PanelIsa::kAvx512 ? panels::run_avx512 : panels::run_avx2;
  const int64_t np = w.panels();
  // Large batches: tasks are (token tile, panel group) so a panel group stays in L1/L2
  // while its token tile streams.
  constexpr int64_t kTokTile = 64, kPanelGroup = 4;
  if (!pool) {
    run(w, a, 0, n, y, ldy, 0, np);
  } else if (n <= kTokTile) {
    pool->parallel_for(np, [&](int64_t p0, int64_t p1) { run(w, a, 0, n, y, ldy, p0, p1); });
  } else {
    const int64_t n_tt = (n + kTokTile - 1) / kTokTile, n_pg = (np + kPanelGroup - 1) / kPanelGroup;
    pool->parallel_for(n_tt * n_pg, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t tt = i / n_pg, pg = i % n_pg;
        run(w, a, tt * kTokTile, std::min(n, (tt + 1) * kTokTile), y, ldy, pg * kPanelGroup,
                   std::min(np, (pg + 1) * kPanelGroup));
      }
    });
  }
}

}  // namespace ballast::cpu
