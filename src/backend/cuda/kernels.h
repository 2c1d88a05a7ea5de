// Launchers of the CUDA kernels (one .cu per op family). Host code calls only these;
// every launcher checks nothing itself: callers use check_launch() (--debug-sync).
// Device code never asserts or traps: out-of-range input sets a flag in ErrorFlags.
#pragma once
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace ballast::cuda {

using bf16 = __nv_bfloat16;

#ifdef __CUDACC__
// Lets a kernel launched after this one with programmatic dependent launch (the GEMVs)
// start early (it prefetches its weights, then waits for this grid to finish).
__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}
#endif

// Device-side error counters, read back with each step's results.
struct ErrorFlags {
  int bad_token;      // embedding: ids outside [0, rows) (row written as zeros)
  int bad_kv_slot;    // rope/kv write or attention: a block table entry out of range
  int bad_position;   // embed_positions: a position outside the learned table (row written as zeros)
};

// Launch bookkeeping: in debug-sync mode every launch synchronizes and names the kernel.
void set_debug_sync(bool on);
bool debug_sync();
// cudaGetLastError (+ cudaDeviceSynchronize in debug-sync mode); returns an empty string
// when fine, else "kernel NAME: <cuda error>".
const char* check_launch(const char* kernel);
// An environment switch is on when set to anything but "" or "0".
bool env_on(const char* name);
// BALLAST_CUDA_PROFILE=1: per-kernel GPU time (events around each launch), table at exit.
bool profiling();
void prof_begin(cudaStream_t s);
void prof_end(const char* name, cudaStream_t s);
void prof_collect();  // after the stream synchronized

// ---- random.cu: deterministic uniform(-a, a) bf16 fill (hash of seed, index).
void fill_uniform_bf16(bf16* p, int64_t n, float a, uint64_t seed, cudaStream_t s);
void fill_const_f32(float* p, int64_t n, float v, cudaStream_t s);

// ---- embedding.cu: x (n, H) f32 = emb[ids] * scale; bad ids -> zeros + flags->bad_token.
void embed(const bf16* emb, int64_t rows, int H, const int32_t* ids, int n, float scale, float* x,
           ErrorFlags* flags, cudaStream_t s);
// out (m, H) = x[idx[i]] (selected logits rows).
void gather_rows(const bf16* x, int H, const int32_t* idx, int m, bf16* out, cudaStream_t s);

// ---- norm_rope.cu
// out (n, H) bf16 = rmsnorm(x) * (offset + w).
void rmsnorm(const float* x, const float* w, int n, int H, float eps, float offset, bf16* out, cudaStream_t s);
// x += delta (bf16); out = rmsnorm(x) * (offset + w). Fused residual add + norm.
void add_rmsnorm(float* x, const bf16* delta, const float* w, int n, int H, float eps, float offset, bf16* out,
                 cudaStream_t s);


// ---- attention.cu
struct AttnArgs {
  const bf16* qkv;       // (n, qd + 2 kd): q read from here (already rotated)
  const bf16* k_cache;   // (blocks, n_kv, 16, hd)
  const bf16* v_cache;
  const int32_t* pos;    // (n,) position of each token
  const int32_t* seq_slot;      // (n,) row of the block table
  const int32_t* block_table;   // (n_slots, max_blocks)
  int max_blocks;
  int64_t n_blocks;      // pool size (bounds check)
  const int32_t* row_ids;  // attention_rows: batch rows to compute (null: 0..n-1)
  int n, n_heads, n_kv, hd;
  float scale;
  int window;            // 0: full causal
  int max_ctx;           // largest pos + 1 in the batch (shared memory sizing)
  bf16* out;             // (n, n_heads, hd)
  ErrorFlags* flags;
  // attention_rows only (the decode and prefill kernels are never given these; zero = off):
  int q_ld;                 // row stride of qkv in elements; 0: qd + 2 kd (packed q|k|v rows)
  const int32_t* kv_len;    // (block-table rows) or null (causal). Set: every query of that row sees
                            // keys [0, kv_len[row]) (non-causal / cross-attention; window ignored)
  const float* rel_bias;    // (n_heads, 2 rel_max + 1) or null: score += rel_bias[h][clamp(t - p) + rel_max]
  int rel_max;
};
// One block per (token, head): any mix of decode and prefill tokens; the only kernel that
// takes kv_len / rel_bias / q_ld (encoder, cross-attention, relative-position bias).
void attention_rows(const AttnArgs& a, cudaStream_t s);
// ---- attention_decode.cu: flash-decoding for rows of any kind (head_dim 64/128/256, GQA
// group <= 8): grid (n_kv, rows, splits); splits > 1 need part_o (rows, n_heads, splits,
// hd) and part_ml (rows, n_heads, splits, 2) f32 scratch and counters (rows, n_kv) ints,
// zero before the first use (the kernel leaves them zero).
bool attention_decode_supported(int hd, int n_heads, int n_kv);
int attention_decode_splits(int n_rows, int n_kv, int max_ctx);
void attention_decode(const AttnArgs& a, int splits, float* part_o, float* part_ml, int* counters, cudaStream_t s);
// Tensor-core prefill: tiles of 64 consecutive tokens of one sequence.
struct PrefillTile {
  int32_t tok0;   // first batch row
  int32_t rows;   // <= 64
  int32_t slot;   // block table row
  int32_t pos0;   // position of tok0
};
void attention_prefill(const AttnArgs& a, const PrefillTile* tiles, int n_tiles, cudaStream_t s);
// attention_prefill_mma.cu: the same with mma.sync, S/P/O in registers (head_dim 64 and
// 128; false, nothing launched, for others).
bool attention_prefill_mma(const AttnArgs& a, const PrefillTile* tiles, int n_tiles, cudaStream_t s);

// ---- gemm.cu: Y (n, N) = X (n, K) @ W (N, K)^T. bf16 in, fp32 accumulate (cuBLAS, or
// gemv_small for n <= gemv_route_max_tokens()).
void gemm_bf16(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, bf16* Y, cudaStream_t s);
void gemm_bf16_f32out(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, float* Y, cudaStream_t s);
// Small-batch GEMV (1 <= n <= kGemvMaxTokens tokens) with fusions for the decode path.
constexpr int kGemvMaxTokens = 8;
enum class GemvEpi {
  kStoreBf16,  // Y bf16 (n, N)
  kStoreF32,   // Y f32 (n, N)
  kAddF32,     // Y f32 residual (n, N) += bf16(result)
  kSwiGlu,     // W is (2N, K) = [gate; up]: Y bf16 (n, N) = silu(gate) * up
  kGeGlu,      // same with gelu_tanh
};
struct GemvArgs {
  const bf16* W;  // (N, K), or (2N, K) for the GLU epilogues
  int N, K;
  const bf16* X;  // (n, K) bf16 activations; ignored when xf is set
  const float* xf;       // (n, K) f32 residual: X = bf16(rmsnorm(xf) * (offset + norm_w)), fused
  const float* norm_w;   // (K)
  float eps, offset;
  int n;
  void* Y;
  int wpr = 1;  // warps per output row: set by gemv_small
  bf16* xs_out = nullptr;  // (n, K) or null: with xf, also store the normalized rows (the grid's
                           // blocks write disjoint slices), so a lazily normed tensor is materialized
};
// false (nothing launched) when n or K are outside what the GEMV handles.
bool gemv_small(const GemvArgs& a, GemvEpi epi, cudaStream_t s);
// Largest n that gemm_bf16 / gemm_bf16_f32out and the backend's fused paths route to
// gemv_small; larger n go to cuBLAS. BALLAST_GEMV_MAX_TOKENS (0..kGemvMaxTokens), default 1:
// measured on H200 (bf16 decode step, graphs on), cuBLAS beats the GEMV from n = 2 on
// (8B shape: 5.6 vs 6.8 ms at n = 2, 5.7 vs 16-27 ms at n = 8; 1B and 0.5B shapes alike),
// while at n = 1 the GEMV wins on small models (0.5B: 1.06 vs 1.35 ms; 8B: 6.35 vs 5.49 ms).
int gemv_route_max_tokens();

// ---- sampling.cu: per logits row: greedy id over valid rows (mask may be null),
// log-probability of that id, and a non-finite flag (id -1) when any valid logit is
// NaN/Inf. Rows: m, each of V floats.
// scratch: greedy_scratch_bytes(m) bytes of device memory.
size_t greedy_scratch_bytes(int m);
void greedy_rows(const float* logits, int m, int V, const uint8_t* valid, int32_t* ids, float* logprobs, void* scratch,
                 cudaStream_t s);

}  // namespace ballast::cuda
