// matmul dispatch: integer-dot decode kernels where a format has one, else
// dequantize-to-f32 tiles and FMA dots / sgemm.
#include "backend/cpu/matmul.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "backend/cpu/dot_kernels.h"
#include "core/quant.h"
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

// Software prefetch of the bytes kPrefetchBytes past the current row (bounded by the
// rows left in this chunk): narrow rows (e.g. 640 columns of a 262144-row LM head)
// otherwise stall on DRAM latency, as the hardware prefetcher does not run far enough.
constexpr size_t kPrefetchBytes = 4096;
inline void prefetch_ahead(const uint8_t* row, size_t row_bytes, int64_t rows_left) {
  const size_t limit = std::min<size_t>(kPrefetchBytes + row_bytes, row_bytes * static_cast<size_t>(rows_left));
  for (size_t off = kPrefetchBytes; off < limit && off < kPrefetchBytes + row_bytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(row + off), _MM_HINT_T0);
  }
}

// Rows [r0, r1) through the integer kernels; xq: (n, cols/32) activation blocks.
// Tokens go in groups of up to 4 so each weight block is unpacked once per group.
void rows_q8a(const WeightView& w, const DotKernelSet& ks, const BlockQ8A* xq, int64_t n, float* y,
              int64_t r0, int64_t r1) {
  const int64_t nbx = w.cols / 32;
  const size_t rb = w.row_bytes();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = w.row(r);
    prefetch_ahead(wr, rb, r1 - r);
    for (int64_t t0 = 0; t0 < n; t0 += kMaxKernelTokens) {
      const int64_t nt = std::min<int64_t>(kMaxKernelTokens, n - t0);
      ks.by_tokens[nt - 1](wr, xq + t0 * nbx, nbx, w.cols, y + t0 * w.rows + r, w.rows);
    }
  }
}

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

template <class ForRows>
void run_rows(ThreadPool* pool, int64_t rows, ForRows&& body, int64_t grain = 8) {
  if (pool) {
    pool->parallel_for(rows, body, grain);
  } else {
    body(0, rows);
  }
}

// Batches of at least this many tokens go through dequantized f32 tiles and sgemm;
// smaller ones through per-row dots (integer kernels reuse each unpacked weight block
// for up to 4 tokens). Crossovers measured with bench-kernels --n on AVX2/VNNI:
// quantized ~16-32 tokens, f16/bf16 ~3, f32 2. 0 = these defaults.
std::atomic<int64_t> g_gemm_min_tokens{0};
std::atomic<bool> g_exact{false};

int64_t gemm_min_tokens(DType t) {
  const int64_t forced = g_gemm_min_tokens.load(std::memory_order_relaxed);
  if (forced > 0) return forced;
  if (g_exact.load(std::memory_order_relaxed)) return 1;
  switch (t) {
    case DType::kF32: return 2;
    case DType::kF16: case DType::kBF16: return 3;
    default: return 24;
  }
}

void sgemm_single_threaded_once() {
  static const bool done = [] {
    // We parallelize over weight tiles ourselves; OpenBLAS's own threads would
    // oversubscribe the cores.
    openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

// Rows [r0, r1) as tiles: dequantize a tile of rows to f32, then one sgemm
// y[:, tile] = x @ tile^T.
void rows_gemm(const WeightView& w, const float* x, int64_t n, float* y, int64_t r0, int64_t r1,
               int64_t tile_rows) {
  thread_local std::vector<float> buf;
  for (int64_t t0 = r0; t0 < r1; t0 += tile_rows) {
    const int64_t tr = std::min(tile_rows, r1 - t0);
    const float* wt;
    if (w.dtype == DType::kF32) {
      wt = reinterpret_cast<const float*>(w.row(t0));
    } else {
      if (static_cast<int64_t>(buf.size()) < tr * w.cols) buf.resize(tr * w.cols);
      for (int64_t r = 0; r < tr; ++r) dequantize_row(w.dtype, w.row(t0 + r), buf.data() + r * w.cols, w.cols);
      wt = buf.data();
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(tr),
                static_cast<int>(w.cols), 1.f, x, static_cast<int>(w.cols), wt, static_cast<int>(w.cols), 0.f,
                y + t0, static_cast<int>(w.rows));
  }
}

void matmul_gemm(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool) {
  sgemm_single_threaded_once();
  // A tile of ~256 KiB of f32 weights stays in L2 while sgemm streams x over it.
  int64_t tile = std::clamp<int64_t>((256 << 10) / (4 * w.cols), 16, 256) / 16 * 16;
  run_rows(pool, (w.rows + tile - 1) / tile, [&](int64_t b, int64_t e) {
    rows_gemm(w, x, n, y, b * tile, std::min(e * tile, w.rows), tile);
  }, 1);
}

void matmul_impl(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool) {
  if (n <= 0 || w.rows <= 0) return;
  if (n >= gemm_min_tokens(w.dtype)) {
    matmul_gemm(w, x, n, y, pool);
    return;
  }
  if (is_float(w.dtype)) {
    run_rows(pool, w.rows, [&](int64_t r0, int64_t r1) { rows_float(w, x, n, y, r0, r1); });
    return;
  }
  const DotKernelSet* ks = dot_kernels(w.dtype);
  if (!ks) {
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
  run_rows(pool, w.rows, [&](int64_t r0, int64_t r1) { rows_q8a(w, *ks, xqp, n, y, r0, r1); });
}

}  // namespace

void set_matmul_exact(bool exact) { g_exact.store(exact); }
bool matmul_exact() { return g_exact.load(std::memory_order_relaxed); }

void set_matmul_gemm_min_tokens(int64_t n) { g_gemm_min_tokens.store(n < 0 ? 0 : n); }

int64_t matmul_uniform_tokens(DType t) {
  if (is_float(t) || matmul_exact() || !dot_kernels(t)) return 1;
  return gemm_min_tokens(t);
}

void matmul_serial(const WeightView& w, const float* x, int64_t n, float* y) {
  matmul_impl(w, x, n, y, nullptr);
}

void matmul(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
  matmul_impl(w, x, n, y, &pool);
}

}  // namespace ballast::cpu
