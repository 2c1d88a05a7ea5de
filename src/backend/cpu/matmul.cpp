// matmul dispatch: integer-dot decode kernels where a format has one, else
// dequantize-to-f32 tiles and FMA dots / sgemm.
#include "backend/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/quant.h"
#include "backend/cpu/simd.h"

namespace ballast::cpu {

size_t WeightView::row_bytes() const {
  const auto& info = dtype_info(dtype);
  return static_cast<size_t>(cols / info.block_elems) * info.block_bytes;
}

bool embedding_row(const WeightView& w, int64_t row, float* out) {
  if (row < 0 || row >= w.rows) return false;
  dequantize_row(w.dtype, w.row(row), out, w.cols);
  return true;
}

namespace {

// Rows [r0, r1) of y = x @ w^T via per-row dequantization (generic fallback).
void matmul_rows_dequant(const WeightView& w, const float* x, int64_t n, float* y, int64_t r0,
                         int64_t r1) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < w.cols) buf.resize(w.cols);
  for (int64_t r = r0; r < r1; ++r) {
    const float* wr = w.dtype == DType::kF32 ? reinterpret_cast<const float*>(w.row(r)) : buf.data();
    if (w.dtype != DType::kF32) dequantize_row(w.dtype, w.row(r), buf.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) y[t * w.rows + r] = dot_f32(wr, x + t * w.cols, w.cols);
  }
}

}  // namespace

void matmul_serial(const WeightView& w, const float* x, int64_t n, float* y) {
  matmul_rows_dequant(w, x, n, y, 0, w.rows);
}

void matmul(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
  pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1) { matmul_rows_dequant(w, x, n, y, r0, r1); }, 8);
}

}  // namespace ballast::cpu
