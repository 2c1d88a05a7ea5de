// Launchers of the small kernels the op interface needs beyond the fused decode path
// (ops_kernels.cu): learned positions, generic norms (LayerNorm, norms of bf16 tensors,
// row-gathered norms), residual adds, bias adds, activations, GLU for every activation,
// logit soft-capping. Like kernels.h: launchers check nothing; device code only sets
// ErrorFlags, never asserts.
#pragma once
#include <cstdint>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

// Activation codes (the op interface's Act, in the same order).
enum class ActCode : int { kSilu = 0, kGeluTanh = 1, kGeluErf = 2, kRelu = 3 };

// x (n, H) f32 = table[pos[t]] (bf16 table (rows, H)). A position outside [0, rows) writes
// zeros and counts in flags->bad_position (the host rejects such steps first).
void embed_positions(const bf16* table, int64_t rows, int H, const int32_t* pos, int n, float* x, ErrorFlags* flags,
                     cudaStream_t s);

struct NormRowsArgs {
  const void* x;        // (rows_x, cols) f32 when x_f32, else bf16
  bool x_f32;
  const int32_t* idx;   // (rows) source row of each output row, or null: row r reads row r
  int rows, cols;       // output rows
  const float* w;       // (cols) or null (no scale)
  const float* b;       // (cols) or null (LayerNorm bias)
  float eps;
  bool layer;           // false: RMSNorm x * rsqrt(mean(x^2) + eps) * w; true: LayerNorm
  bf16* out;            // (rows, cols)
};
// One block per output row; fp32 statistics, rounded to bf16 once.
void norm_rows(const NormRowsArgs& a, cudaStream_t s);

// x (n, H) f32 residual += rmsnorm(delta) * w, delta (n, H) bf16 (a post-attention /
// post-FFN norm fused with the residual add; the next norm is a separate op).
void add_rmsnorm_delta(float* x, const bf16* delta, const float* w, int n, int H, float eps, cudaStream_t s);

// r (n, cols) += y (n, cols) (+ bias (cols) f32, may be null); r and y each f32 or bf16.
void add_rows(void* r, bool r_f32, const void* y, bool y_f32, const float* bias, int64_t n, int cols, cudaStream_t s);

// y (n, cols) bf16 += bias (cols) f32, rounded once.
void bias_add_bf16(bf16* y, const float* bias, int64_t n, int cols, cudaStream_t s);

// out (count) bf16 = x f32.
void to_bf16(const float* x, int64_t count, bf16* out, cudaStream_t s);

// out (count) bf16 = act(x), x f32 or bf16.
void activation(const void* x, bool x_f32, int64_t count, ActCode act, bf16* out, cudaStream_t s);

// gu (n, 2F) bf16 = [gate | up] -> out (n, F) bf16 = act(gate) * up.
void glu(const bf16* gu, int n, int F, ActCode act, bf16* out, cudaStream_t s);

// y (count) f32 = cap * tanh(y / cap) (final logit soft-capping).
void softcap_f32(float* y, int64_t count, float cap, cudaStream_t s);

}  // namespace ballast::cuda
