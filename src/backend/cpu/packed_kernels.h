// Internal to the packed panels: the panel byte layouts, the quantized activations the
// kernels read, and the per-ISA kernel entry points (packed_avx512.cpp, packed_avx2.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/cpu/packed.h"

namespace ballast::cpu::panels {

// Per-block byte layouts of one 16-row panel (see PanelKind):
//   U4: [4 groups][16 rows][4 bytes] nibbles (low: column 4g+i, high: 16+4g+i), d[16] f16, m[16] f16
//   U8: [8 groups][16 rows][4 bytes] codes, d[16] f16, m[16] f16
//   K4 (256 columns): [4 chunks][8 groups][16 rows][4 bytes] nibbles (low: column 64c+4g+i,
//       high: 64c+32+4g+i), d[16] f16, dmin[16] f16, sc[8][16] u8, mn[8][16] u8
//   K6 (256 columns): [16 sub-blocks][4 groups][16 rows][4 bytes] codes, d[16] f32, sc[16][16] i8
// A 64-byte group row is two 32-byte halves (rows 0-7, rows 8-15): the AVX2 kernels
// read the same panels as two 8-row halves.
constexpr size_t kU4Block = 256 + 64, kU8Block = 512 + 64, kK4Block = 2048 + 64 + 256, kK6Block = 4096 + 64 + 256;

// Activations of n tokens: int8 codes, per 32 columns d and s = d * sum(codes), per 16
// columns the integer sum (K6's offset).
struct Act {
  int64_t cols = 0;
  std::vector<int8_t> q;       // (n, cols)
  std::vector<float> d, s;     // (n, cols / 32)
  std::vector<int32_t> sum16;  // (n, cols / 16)
};

// y (tokens [t0, t1), ldy) columns of panels [p0, p1) = panels x activations.
void run_avx512(const PackedWeight& w, const Act& a, int64_t t0, int64_t t1, float* y, int64_t ldy, int64_t p0,
                int64_t p1);
void run_avx2(const PackedWeight& w, const Act& a, int64_t t0, int64_t t1, float* y, int64_t ldy, int64_t p0,
              int64_t p1);

}  // namespace ballast::cpu::panels
