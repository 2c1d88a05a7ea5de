// The attention input kernel (qkv_post.cu): q/k/v bias, per-head q/k RMSNorm, RoPE and
// the paged KV write, in one pass.
// Like kernels.h: launchers check nothing; device code only sets ErrorFlags.
#pragma once
#include <cstdint>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

struct QkvPostArgs {
  bf16* qkv;               // (n, qd + 2*kd) rows [q heads | k heads | v heads]; q is rewritten in place (bias, norm, rope)
  int n, n_heads, n_kv, hd;  // hd even, hd <= 256
  const float* bias;       // (qd + 2*kd) or null: added to q, k, v first
  const float* q_norm;     // (hd) or null: per-head RMSNorm on q (weights used as (norm_offset + w))
  const float* k_norm;     // (hd) or null
  float eps, norm_offset;
  const int32_t* pos;      // (n) positions
  const float* inv_freq;   // (rot_dims/2) rope inverse frequencies, or null: no rotation (learned / relative positions)
  bool interleaved;        // rope layout: false = rotate-half (HF), true = interleaved pairs (GGML)
  const int32_t* slot;     // (n) cache slot of each token
  int64_t n_slots;         // blocks*16: slots outside [0, n_slots) are skipped and counted in flags->bad_kv_slot
  bf16* k_cache; bf16* v_cache;  // per layer (blocks, n_kv, 16, hd); slot = block*16 + offset
  ErrorFlags* flags;
  int rot_dims = 0;        // rotated dims of each head (even, <= hd); 0: all hd. Partial rotary (NeoX
                           // style): rotate-half pairs (j, j + rot_dims/2) or interleaved pairs (2j, 2j+1)
                           // over the first rot_dims dims; the rest pass through.
  // LongRoPE (backend::RopeTable): token t rotates with inv_freq_long when rope_len[t] (its
  // sequence's length, StepPlan::rope_lengths) > long_after; cos and sin are times rope_scale.
  const float* inv_freq_long = nullptr;  // (rot_dims/2) or null
  const int32_t* rope_len = nullptr;     // (n), read only with inv_freq_long
  int long_after = 0;
  float rope_scale = 1.0f;
};
// Per token, in fp32 and rounded to bf16 once: x += bias; q, k: x = rmsnorm(x) * (offset + w)
// per head; q, k rotated at pos[t]. q (and the processed k, v) are written back into qkv;
// k, v go to the cache at slot[t]. A bad slot writes nothing to the cache (q still written).
void qkv_post(const QkvPostArgs& a, cudaStream_t s);

// Ops::store_kv: kv (n, 2 kd) bf16 rows [k heads | v heads] -> the K and V cache rows at
// slot[t] (no attention: an encoder's cross-attention K/V). A slot outside [0, n_slots)
// writes nothing and counts in flags->bad_kv_slot.
void store_kv_rows(const bf16* kv, int n, int n_kv, int hd, const int32_t* slot, int64_t n_slots, bf16* k_cache,
                   bf16* v_cache, ErrorFlags* flags, cudaStream_t s);


}  // namespace ballast::cuda
