// Row-dot kernels used by matmul: weight row (storage dtype) . activation row.
// Quantized weights dot a Q8-quantized activation (BlockQ8A, one scale per 32 values)
// with integer multiply-adds. Internal to backend/cpu.
#pragma once
#include <cstdint>

#include "core/quant_blocks.h"
#include "core/dtype.h"

namespace ballast::cpu {

// x: (n) -> y: (n/32) blocks. n % 32 == 0.
void quantize_q8a(const float* x, BlockQ8A* y, int64_t n);

// Dots one weight row (`cols` elements of its dtype) with NT activation rows:
// token t's blocks start at x + t * xs; its result goes to out[t * os].
using DotKernel = void (*)(const uint8_t* w, const BlockQ8A* x, int64_t xs, int64_t cols, float* out,
                           int64_t os);
struct DotKernelSet {
  DotKernel by_tokens[4];  // [NT - 1], NT = 1..4 tokens per call
};
constexpr int kMaxKernelTokens = 4;

// Kernels for t (AVX-VNNI variants when the CPU has them); nullptr when the dtype has
// no integer kernel (float weights), then matmul uses float dots.
const DotKernelSet* dot_kernels(DType t);
// Forces the plain AVX2 kernels (tests/benchmarks compare both paths).
void set_dot_kernels_avx2_only(bool avx2_only);
bool cpu_has_avx_vnni();

float vec_dot_f16(const uint16_t* w, const float* x, int64_t n);
float vec_dot_bf16(const uint16_t* w, const float* x, int64_t n);

}  // namespace ballast::cpu
