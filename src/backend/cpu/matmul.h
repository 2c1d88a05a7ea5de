// Weight views and y = x @ W^T for every storage dtype: quantized decode through
// integer dot products against a Q8-quantized activation, prefill through tiles.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace ballast::cpu {

// Row-major weight: rows = out_features; each row holds `cols` elements in `dtype`
// blocks; rows are contiguous (row r starts at data + r * row_bytes()).
struct WeightView {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;

  size_t row_bytes() const;
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
};

// x: (n, cols) -> y: (n, rows), y = x @ w^T. cols must be a multiple of w's block
// size. y must not alias x. Uses every thread of `pool`.
// Quantized weights with small n: x is quantized to 8 bits per 32 values (one float
// scale each, like llama.cpp's Q8 activations; ~0.5% relative error per dot) and
// dotted with integer kernels (AVX2, AVX-VNNI when present). Larger n and float
// weights: f32 activations against dequantized weight tiles through sgemm.
void matmul(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool& pool);

// Same, single-threaded (for callers already inside a parallel region).
void matmul_serial(const WeightView& w, const float* x, int64_t n, float* y);

// Process-wide numerics mode. Exact: quantized weights are dequantized and multiplied
// in fp32 at every batch size (matches transformers to ~1e-4). Default (false): 8-bit
// activations and integer kernels (llama.cpp's scheme); the CPU backend then also
// repacks weights into panels at load (backend/cpu/packed.h). Set before loading.
void set_matmul_exact(bool exact);
bool matmul_exact();

// Tuning/benchmark knob: batches of n >= this many tokens use the dequantized-tile
// sgemm path, smaller ones the per-row dot kernels. 0 restores the per-dtype
// defaults (f32: 2, f16/bf16: 3, quantized: 24).
void set_matmul_gemm_min_tokens(int64_t n);
// The smallest batch from which a matmul of this dtype computes every token alike (the
// sgemm threshold for quantized types, whose smaller batches use 8-bit activations; 1 when
// every batch size takes one path: exact mode, float weights).
int64_t matmul_uniform_tokens(DType t);

// Dequantizes row `row` of w into out: (cols). Returns false without reading w when
// row is outside [0, rows).
bool embedding_row(const WeightView& w, int64_t row, float* out);

}  // namespace ballast::cpu
