// Float conversions and dequantization of every storage dtype (GGML block layouts),
// bit-exact with gguf-py's reference dequantizers.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace ballast {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);   // round to nearest even; overflow -> inf
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);   // round to nearest even; NaN stays NaN

void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32_row(const uint16_t* src, float* dst, int64_t n);
void fp32_to_bf16_row(const float* src, uint16_t* dst, int64_t n);

// True for every DType in core/dtype.h.
bool dequantize_supported(DType t);

// src: row_bytes(t, n) bytes; dst: (n) floats. n must be a multiple of
// dtype_info(t).block_elems (the caller checks; shapes come from validated files).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

}  // namespace ballast
