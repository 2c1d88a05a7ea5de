// State shared by the CUDA backend (cuda_backend.cpp, cuda_step.cpp) and its Ops
// (cuda_ops.cpp): the device objects one step's ops use, the step's index tables, and
// what a dry run of the forward learned. Include only under BALLAST_HAVE_CUDA.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/step.h"
#include "backend/cuda/kernels.h"
#include "core/status.h"

namespace ballast::cuda {

#define CU_RETURN(expr)                                                                                  \
  do {                                                                                                   \
    cudaError_t e_ = (expr);                                                                             \
    if (e_ != cudaSuccess) return error(ErrorCode::kInternal, std::string(#expr) + ": " + cudaGetErrorString(e_)); \
  } while (0)

// A growable device buffer. Captured CUDA graphs hold raw pointers, so every
// reallocation bumps *epoch and graphs captured under an older epoch are re-captured.
template <class T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  // Grows to `want` elements (contents lost); zero: the new memory is zeroed.
  Status ensure(size_t want, uint64_t* epoch, cudaStream_t zero_on = nullptr, bool zero = false) {
    if (want <= n && p) return Status();
    if (epoch) ++*epoch;
    if (p) cudaFree(p);
    p = nullptr;
    n = 0;
    CU_RETURN(cudaMalloc(&p, std::max<size_t>(want, 1) * sizeof(T)));
    n = std::max<size_t>(want, 1);
    if (zero) CU_RETURN(cudaMemsetAsync(p, 0, n * sizeof(T), zero_on));
    return Status();
  }
  DevBuf() = default;
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

struct WeightRec {
  void* p = nullptr;
  int64_t rows = 0, cols = 0;  // vectors: rows = length, cols = 1
  bool matrix = false;         // true: bf16 (rows, cols); false: f32 vector
};

struct RopeRec {
  float* inv_freq = nullptr;       // (n_half)
  int n_half = 0;                  // rot_dim / 2
  float* inv_freq_long = nullptr;  // (n_half) or null (LongRoPE: backend::RopeTable)
  int long_after = 0;
  float scale = 1.0f;
};

// Device objects the ops use; owned by the backend, pointers refreshed before each step.
struct DeviceState {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  ErrorFlags* flags = nullptr;  // (1) device
  std::vector<WeightRec> weights;
  std::vector<RopeRec> ropes;
  backend::KvLayout kv;
  int64_t n_blocks = 0;
  std::vector<bf16*> k_cache, v_cache;  // per layer (blocks, n_kv, 16, hd)
  unsigned char* arena = nullptr;       // activation bump arena
  size_t arena_bytes = 0;
  int* counters = nullptr;              // attention_decode split tickets, kept zero
  size_t n_counters = 0;
  float* logits = nullptr;              // (m, V) the step's logits
  size_t logits_elems = 0;
  bool no_flash = false, no_decode_attn = false, no_fused_gemv = false;  // BALLAST_CUDA_NO_* knobs
};

// One step's index tables: device pointers into one packed int32 upload
//   tokens (n) | pos (n) | slot (n) | seq (n) | lidx (m) | row_ids (n_rows) | tiles (4 n_tiles) |
//   block table (n_seqs, max_blocks) | rope_len (n: the token's sequence length, LongRoPE) |
//   span (n_seqs: last position of the sequence in this step + 1, non-causal attention) |
//   cross_len (n_seqs) | cross table (n_seqs, cross_max_blocks)   (the last two: decoder
//   steps of encoder-decoders only)
// and the counts the ops need. Decode-only steps (one token per sequence, all rows want
// logits) round max_blocks and cross_max_blocks up to 16 so one captured graph serves many
// consecutive steps.
struct StepIndex {
  const backend::StepPlan* plan = nullptr;
  int n = 0, m = 0, n_seqs = 0, max_blocks = 0, max_ctx = 0;
  int n_rows = 0, n_tiles = 0;  // attention: tokens for the row kernels / prefill tiles
  int cross_max_blocks = 0;     // 0: the step has no cross tables
  bool gather = false;          // logits rows are not all rows
  bool decode_only = false;
  size_t off_pos = 0, off_slot = 0, off_seq = 0, off_lidx = 0, off_rows = 0, off_tiles = 0, off_bt = 0,
         off_rope_len = 0, off_span = 0, off_cross_len = 0, off_cross_bt = 0, total = 0;
  const int32_t *tokens = nullptr, *pos = nullptr, *slot = nullptr, *seq = nullptr, *lidx = nullptr,
                *row_ids = nullptr, *bt = nullptr, *rope_len = nullptr;  // row_ids null: rows 0..n-1
  const int32_t *span = nullptr, *cross_len = nullptr, *cross_bt = nullptr;
  const PrefillTile* tiles = nullptr;
};

// What the forward's ops asked for: the dry run's record sizes the buffers, and its
// fingerprint (a hash of every op with its arguments, scopes included) keys the captured
// graphs, so a graph is replayed only for a forward that issues the same ops.
struct OpsRecord {
  uint64_t fingerprint = 0;
  size_t arena_peak = 0;      // bytes
  size_t counters = 0;        // attention_decode tickets
  bool logits_called = false;
  int64_t logits_cols = 0;    // rows of the LM head
  int64_t embed_rows = -1;    // rows of the token table the forward embeds from (-1: none)
  int64_t position_rows = -1; // rows of a learned position table (-1: none)
};

}  // namespace ballast::cuda
