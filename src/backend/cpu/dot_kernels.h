// Row-dot kernels used by matmul: weight row (storage dtype) . activation row.
// Quantized weights dot a Q8-quantized activation (BlockQ8A, one scale per 32 values)
// with integer multiply-adds. Internal to backend/cpu.
#pragma once
#include <cstdint>

#include "backend/cpu/quant_blocks.h"
#include "core/dtype.h"

namespace ballast::cpu {

// x: (n) -> y: (n/32) blocks. n % 32 == 0.
void quantize_q8a(const float* x, BlockQ8A* y, int64_t n);

// dot(weight row of `cols` elements, activation blocks of the same row length).
using VecDotQ8A = float (*)(const uint8_t* w, const BlockQ8A* x, int64_t cols);
// nullptr when the dtype has no integer kernel (then matmul dequantizes).
VecDotQ8A vec_dot_q8a_kernel(DType t);

float vec_dot_f16(const uint16_t* w, const float* x, int64_t n);
float vec_dot_bf16(const uint16_t* w, const float* x, int64_t n);

}  // namespace ballast::cpu
