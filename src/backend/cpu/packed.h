// Quantized weights repacked at load into 16-row panels for the integer kernels: 4
// consecutive columns of 16 rows are 64 contiguous bytes, so a broadcast 4-byte group of
// the 8-bit activation feeds 16 rows (one zmm: vpdpbusd on AVX-512 VNNI) or 8 rows (one
// ymm: vpmaddubsw on AVX2), decode and prompt GEMM alike. Internal to backend/cpu.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/cpu/matmul.h"
#include "core/thread_pool.h"

namespace ballast::cpu {

enum class PanelKind : uint8_t {
  kU4,  // Q4_0, Q4_1: 4-bit u, per 32 columns f16 d and m: w = d * u + m
  kU8,  // Q8_0, Q5_0, Q5_1: 8-bit u, per 32 columns f16 d and m
  kK4,  // Q4_K: 4-bit u, per 256 f16 d/dmin, per 32 u8 scale/min: w = d*sc*u - dmin*mn
  kK6,  // Q6_K: 6-bit u (stored as bytes), per 256 f16 d, per 16 i8 scale: w = d*sc*(u - 32)
};

constexpr int64_t kPanelRows = 16;

struct PackedWeight {
  PanelKind kind = PanelKind::kU4;
  DType src = DType::kF32;  // dtype the panels were made from
  int64_t rows = 0, cols = 0;
  size_t panel_bytes = 0;   // bytes of one 16-row panel (all columns)
  std::shared_ptr<uint8_t> data;  // 64-byte aligned, (rows + 15) / 16 panels

  int64_t panels() const { return (rows + kPanelRows - 1) / kPanelRows; }
  const uint8_t* panel(int64_t p) const { return data.get() + static_cast<size_t>(p) * panel_bytes; }
};

// Which panel kernels run: AVX-512 F/BW/VL/DQ + VNNI where the CPU has them, else AVX2
// (the build's baseline); kNone with BALLAST_CPU_KERNELS=rows (row kernels everywhere).
// BALLAST_CPU_KERNELS=avx2 keeps AVX-512 machines on the AVX2 panels.
enum class PanelIsa : uint8_t { kNone, kAvx2, kAvx512 };
PanelIsa packed_isa();
const char* panel_isa_name(PanelIsa isa);
// True when packed_isa() != kNone.
bool packed_supported();
// Tests/benchmarks: caps the ISA at `max` (kNone disables the panels; kAvx512 restores
// the automatic choice). The CPU's own limits still apply.
void set_packed_isa_limit(PanelIsa max);
// Tests/benchmarks: disables the packed kernels (matmul falls back to the row kernels).
inline void set_packed_disabled(bool disabled) { set_packed_isa_limit(disabled ? PanelIsa::kNone : PanelIsa::kAvx512); }

// Whether weights of dtype t can be packed (independent of the CPU).
bool packable(DType t);

// Packs the rows of `parts` (stacked, same dtype and cols) into panels; false when the
// dtype has no panel format or a scale does not survive the conversion exactly (then
// the caller keeps the row kernels). Uses pool for large matrices when given.
bool pack_weight(const std::vector<WeightView>& parts, PackedWeight& out, ThreadPool* pool);

// y (n, ldy) columns [0, rows) = x (n, cols) @ w^T with 8-bit activations.
// Needs packed_supported().
void packed_matmul(const PackedWeight& w, const float* x, int64_t n, float* y, int64_t ldy, ThreadPool* pool);

}  // namespace ballast::cpu
