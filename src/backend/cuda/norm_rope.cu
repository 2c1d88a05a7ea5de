// RMSNorm, optionally fused with the residual add (RoPE and the KV write: qkv_post.cu).
#include "backend/cuda/kernels.h"

#include "backend/cuda/block_reduce.cuh"

namespace ballast::cuda {

namespace {

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

}  // namespace

void rmsnorm(const float* x, const float* w, int n, int H, float eps, float offset, bf16* out, cudaStream_t s) {
  k_rmsnorm<false><<<n, 256, 0, s>>>(const_cast<float*>(x), nullptr, w, H, eps, offset, out);
}

void add_rmsnorm(float* x, const bf16* delta, const float* w, int n, int H, float eps, float offset, bf16* out,
                 cudaStream_t s) {
  k_rmsnorm<true><<<n, 256, 0, s>>>(x, delta, w, H, eps, offset, out);
}

}  // namespace ballast::cuda
