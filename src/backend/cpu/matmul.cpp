// matmul dispatch: integer-dot decode kernels where a format has one, else
// dequantize-to-f32 tiles and FMA dots / sgemm.
#include "backend/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/dot_kernels.h"
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

// Rows [r0, r1) of y = x @ w^T via per-row dequantization (formats without a kernel).
void rows_dequant(const WeightView& w, const float* x, int64_t n, float* y, int64_t r0, int64_t r1) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < w.cols) buf.resize(w.cols);
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_row(w.dtype, w.row(r), buf.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) y[t * w.rows + r] = dot_f32(buf.data(), x + t * w.cols, w.cols);
  }
}

// Rows [r0, r1) for float weights: direct dots, converting f16/bf16 on the fly.
void rows_float(const WeightView& w, const float* x, int64_t n, float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = w.row(r);
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      float v;
      switch (w.dtype) {
        case DType::kF16: v = vec_dot_f16(reinterpret_cast<const uint16_t*>(wr), xt, w.cols); break;
        case DType::kBF16: v = vec_dot_bf16(reinterpret_cast<const uint16_t*>(wr), xt, w.cols); break;
        default: v = dot_f32(reinterpret_cast<const float*>(wr), xt, w.cols); break;
      }
      y[t * w.rows + r] = v;
    }
  }
}

// Rows [r0, r1) through the integer kernel; xq: (n, cols/32) activation blocks.
void rows_q8a(const WeightView& w, VecDotQ8A k, const BlockQ8A* xq, int64_t n, float* y, int64_t r0,
              int64_t r1) {
  const int64_t nbx = w.cols / 32;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = w.row(r);
    for (int64_t t = 0; t < n; ++t) y[t * w.rows + r] = k(wr, xq + t * nbx, w.cols);
  }
}

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

template <class ForRows>
void run_rows(ThreadPool* pool, int64_t rows, ForRows&& body) {
  if (pool) {
    pool->parallel_for(rows, body, 8);
  } else {
    body(0, rows);
  }
}

void matmul_impl(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool) {
  if (n <= 0 || w.rows <= 0) return;
  if (is_float(w.dtype)) {
    run_rows(pool, w.rows, [&](int64_t r0, int64_t r1) { rows_float(w, x, n, y, r0, r1); });
    return;
  }
  VecDotQ8A k = vec_dot_q8a_kernel(w.dtype);
  if (!k) {
    run_rows(pool, w.rows, [&](int64_t r0, int64_t r1) { rows_dequant(w, x, n, y, r0, r1); });
    return;
  }
  const int64_t nbx = w.cols / 32;
  thread_local std::vector<BlockQ8A> xq;
  if (static_cast<int64_t>(xq.size()) < n * nbx) xq.resize(n * nbx);
  BlockQ8A* xqp = xq.data();
  if (pool && n >= 8) {
    pool->parallel_for(n, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) quantize_q8a(x + t * w.cols, xqp + t * nbx, w.cols);
    });
  } else {
    for (int64_t t = 0; t < n; ++t) quantize_q8a(x + t * w.cols, xqp + t * nbx, w.cols);
  }
  run_rows(pool, w.rows, [&](int64_t r0, int64_t r1) { rows_q8a(w, k, xqp, n, y, r0, r1); });
}

}  // namespace

void matmul_serial(const WeightView& w, const float* x, int64_t n, float* y) {
  matmul_impl(w, x, n, y, nullptr);
}

void matmul(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
  matmul_impl(w, x, n, y, &pool);
}

}  // namespace ballast::cpu
