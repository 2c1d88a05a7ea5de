// Attention input post-processing (bias, per-head q/k RMSNorm, RoPE, paged KV write) and
// the plain K/V store of Ops::store_kv. See qkv_post.h.
#include "backend/cuda/qkv_post.h"

namespace ballast::cuda {

namespace {
constexpr int kWarps = 8;     // qkv_post block: 8 warps, one head per warp at a time
constexpr int kMaxPairs = 4;  // rope pairs per lane: hd/2 <= 128 = 32 lanes * 4

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// grid: n tokens; block: kWarps * 32. Row t of qkv: (n_heads + 2 n_kv) heads of hd, q heads,
// then k heads, then v heads, so head h starts at column h * hd. Lane l of the warp owning a
// head holds rope pairs j = l + 32 k (k < kMaxPairs, j < hd/2) as two fp32 registers:
// elements (j, j + hd/2) rotate-half, (2j, 2j+1) interleaved. v heads use the same mapping
// (bias only). Shared cos/sin: (rot/2) for pos[t], from a double angle as the CPU does.
// Partial rotary (rot < hd): pairs j < rot/2 rotate as above within the first rot dims;
// the remaining pairs cover dims rot.. two by two and are not rotated. No rope table:
// rot = 0, nothing rotates (the pairing then only serves the norm and the copy).
__device__ __forceinline__ void pair_index(const QkvPostArgs& a, int j, int rot_half, int& i0, int& i1) {
  if (a.interleaved || j >= rot_half) {
    i0 = a.interleaved ? 2 * j : 2 * rot_half + 2 * (j - rot_half);
    i1 = i0 + 1;
  } else {
    i0 = j;
    i1 = j + rot_half;
  }
}

__global__ void k_qkv_post(QkvPostArgs a) {
  allow_dependents();
  __shared__ float cs[kMaxPairs * 32], sn[kMaxPairs * 32];
  const int t = blockIdx.x;
  const int hd = a.hd, half = hd / 2;
  const int rot_half = a.inv_freq ? (a.rot_dims > 0 ? a.rot_dims / 2 : half) : 0;
  const int width = (a.n_heads + 2 * a.n_kv) * hd;  // qd + 2 kd
  bf16* row = a.qkv + static_cast<int64_t>(t) * width;
  const double p = static_cast<double>(a.pos[t]);
  const float* inv = a.inv_freq_long && a.rope_len[t] > a.long_after ? a.inv_freq_long : a.inv_freq;
  const double scale = a.rope_scale;
  for (int i = threadIdx.x; i < rot_half; i += blockDim.x) {
    double sd, cd;
    sincos(p * static_cast<double>(inv[i]), &sd, &cd);
    cs[i] = static_cast<float>(cd * scale);
    sn[i] = static_cast<float>(sd * scale);
  }
  const int64_t sl = a.slot[t];
  const bool slot_ok = sl >= 0 && sl < a.n_slots;
  if (!slot_ok && threadIdx.x == 0) atomicAdd(&a.flags->bad_kv_slot, 1);
  const int64_t blk = sl / 16, off = sl % 16;  // used only when slot_ok
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int heads = a.n_heads + 2 * a.n_kv;
  for (int h = warp; h < heads; h += kWarps) {  // warp-uniform: shuffles below are safe
    const int kind = h < a.n_heads ? 0 : (h < a.n_heads + a.n_kv ? 1 : 2);  // q, k, v
    const int col0 = h * hd;
    float x0[kMaxPairs], x1[kMaxPairs];
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < kMaxPairs; ++k) {
      const int j = lane + 32 * k;
      x0[k] = x1[k] = 0.0f;
      if (j < half) {
        int i0, i1;
        pair_index(a, j, rot_half, i0, i1);
        x0[k] = __bfloat162float(row[col0 + i0]);
        x1[k] = __bfloat162float(row[col0 + i1]);
        if (a.bias) {
          x0[k] += a.bias[col0 + i0];
          x1[k] += a.bias[col0 + i1];
        }
        ss += x0[k] * x0[k] + x1[k] * x1[k];
      }
    }
    // Per-head RMSNorm (CPU: x * (1 / sqrt(mean(x^2) + eps)) * (offset + w)).
    const float* nw = kind == 0 ? a.q_norm : (kind == 1 ? a.k_norm : nullptr);
    if (nw) {
      ss = warp_sum(ss);
      const float inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + a.eps);
#pragma unroll
      for (int k = 0; k < kMaxPairs; ++k) {
        const int j = lane + 32 * k;
        if (j < half) {
          int i0, i1;
          pair_index(a, j, rot_half, i0, i1);
          x0[k] = x0[k] * inv * (a.norm_offset + nw[i0]);
          x1[k] = x1[k] * inv * (a.norm_offset + nw[i1]);
        }
      }
    }
    bf16* dst = nullptr;  // this head's cache row: (blk, g, off, :) of k or v
    if (kind != 0 && slot_ok) {
      const int g = kind == 1 ? h - a.n_heads : h - a.n_heads - a.n_kv;
      dst = (kind == 1 ? a.k_cache : a.v_cache) + ((blk * a.n_kv + g) * 16 + off) * hd;
    }
#pragma unroll
    for (int k = 0; k < kMaxPairs; ++k) {
      const int j = lane + 32 * k;
      if (j < half) {
        int i0, i1;
        pair_index(a, j, rot_half, i0, i1);
        float y0 = x0[k], y1 = x1[k];
        if (kind != 2 && j < rot_half) {
          const float c = cs[j], s = sn[j];
          y0 = x0[k] * c - x1[k] * s;
          y1 = x0[k] * s + x1[k] * c;
        }
        const bf16 b0 = __float2bfloat16(y0), b1 = __float2bfloat16(y1);
        row[col0 + i0] = b0;  // q for attention; k, v written back too (processed values)
        row[col0 + i1] = b1;
        if (dst) {
          dst[i0] = b0;
          dst[i1] = b1;
        }
      }
    }
  }
}

// grid: n tokens; block 128: row t's k and v heads to the cache at slot[t].
__global__ void k_store_kv(const bf16* kv, int n_kv, int hd, const int32_t* slot, int64_t n_slots, bf16* k_cache,
                           bf16* v_cache, ErrorFlags* flags) {
  const int t = blockIdx.x;
  const int64_t sl = slot[t];
  if (sl < 0 || sl >= n_slots) {
    if (threadIdx.x == 0) atomicAdd(&flags->bad_kv_slot, 1);
    return;
  }
  const int64_t blk = sl / 16, off = sl % 16;
  const int kd = n_kv * hd;
  const bf16* row = kv + static_cast<int64_t>(t) * 2 * kd;
  for (int i = threadIdx.x; i < 2 * kd; i += blockDim.x) {
    const int c = i < kd ? i : i - kd, g = c / hd, d = c % hd;
    bf16* cache = i < kd ? k_cache : v_cache;
    cache[((blk * n_kv + g) * 16 + off) * hd + d] = row[i];
  }
}

}  // namespace

void qkv_post(const QkvPostArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  k_qkv_post<<<a.n, kWarps * 32, 0, s>>>(a);
}

void store_kv_rows(const bf16* kv, int n, int n_kv, int hd, const int32_t* slot, int64_t n_slots, bf16* k_cache,
                   bf16* v_cache, ErrorFlags* flags, cudaStream_t s) {
  if (n <= 0) return;
  k_store_kv<<<n, 128, 0, s>>>(kv, n_kv, hd, slot, n_slots, k_cache, v_cache, flags);
}

}  // namespace ballast::cuda
