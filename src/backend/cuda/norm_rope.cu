// RMSNorm (optionally fused with the residual add) and RoPE fused with the paged KV write.
#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
__device__ __forceinline__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = lane < nw ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// grid: n rows; block 256. Residual stream x is f32; normalized output bf16.
template <bool kAdd>
__global__ void k_rmsnorm(float* x, const bf16* delta, const float* w, int H, float eps, float offset, bf16* out) {
  allow_dependents();
  __shared__ float red[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * H;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float v = x[base + i];
    if constexpr (kAdd) {
      v += __bfloat162float(delta[base + i]);
      x[base + i] = v;
    }
    ss += v * v;
  }
  ss = block_sum(ss, red);
  const float inv = rsqrtf(ss / static_cast<float>(H) + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x)
    out[base + i] = __float2bfloat16(x[base + i] * inv * (offset + w[i]));
}

// grid: n tokens; block: 128 threads. q and k heads rotated in place; k, v copied into
// the cache at slot[t]. A slot outside the pool is flagged and skipped.
__global__ void k_rope_kv(bf16* qkv, int n_heads, int n_kv, int hd, int rot_half, const int32_t* pos,
                          const float* inv_freq, bool interleaved, const int32_t* slot, int64_t n_slots,
                          bf16* kc, bf16* vc, ErrorFlags* flags) {
  const int t = blockIdx.x;
  const int qd = n_heads * hd, kd = n_kv * hd;
  bf16* row = qkv + static_cast<int64_t>(t) * (qd + 2 * kd);
  const double p = static_cast<double>(pos[t]);
  const int heads = n_heads + n_kv;
  for (int j = threadIdx.x; j < heads * rot_half; j += blockDim.x) {
    const int h = j / rot_half, i = j % rot_half;
    bf16* x = row + h * hd;  // q heads then k heads, contiguous
    double sd, cd;
    sincos(p * inv_freq[i], &sd, &cd);
    const float s = static_cast<float>(sd), c = static_cast<float>(cd);
    const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + rot_half;
    const float x0 = __bfloat162float(x[a]), x1 = __bfloat162float(x[b]);
    x[a] = __float2bfloat16(x0 * c - x1 * s);
    x[b] = __float2bfloat16(x1 * c + x0 * s);
  }
  __syncthreads();
  const int64_t sl = slot[t];
  if (sl < 0 || sl >= n_slots) {
    if (threadIdx.x == 0) atomicAdd(&flags->bad_kv_slot, 1);
    return;
  }
  const int64_t blk = sl / 16, off = sl % 16;
  for (int j = threadIdx.x; j < kd; j += blockDim.x) {
    const int g = j / hd, d = j % hd;
    const int64_t dst = ((blk * n_kv + g) * 16 + off) * hd + d;
    kc[dst] = row[qd + j];
    vc[dst] = row[qd + kd + j];
  }
}
}  // namespace

void rmsnorm(const float* x, const float* w, int n, int H, float eps, float offset, bf16* out, cudaStream_t s) {
  k_rmsnorm<false><<<n, 256, 0, s>>>(const_cast<float*>(x), nullptr, w, H, eps, offset, out);
}

void add_rmsnorm(float* x, const bf16* delta, const float* w, int n, int H, float eps, float offset, bf16* out,
                 cudaStream_t s) {
  k_rmsnorm<true><<<n, 256, 0, s>>>(x, delta, w, H, eps, offset, out);
}

void rope_write_kv(bf16* qkv, int n, int n_heads, int n_kv, int hd, const int32_t* pos, const float* inv_freq,
                   bool interleaved, const int32_t* slot, int64_t n_slots, bf16* k_cache, bf16* v_cache,
                   ErrorFlags* flags, cudaStream_t s) {
  k_rope_kv<<<n, 128, 0, s>>>(qkv, n_heads, n_kv, hd, hd / 2, pos, inv_freq, interleaved, slot, n_slots, k_cache,
                              v_cache, flags);
}

}  // namespace ballast::cuda
