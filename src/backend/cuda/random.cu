// Random weights generated on the GPU (random:PRESET): no host time, no transfer.
#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void k_fill_uniform(bf16* p, int64_t n, float a, uint64_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint64_t r = mix64(seed ^ mix64(static_cast<uint64_t>(i)));
    float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    p[i] = __float2bfloat16((2.0f * u - 1.0f) * a);
  }
}

__global__ void k_fill_const(float* p, int64_t n, float v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) p[i] = v;
}

}  // namespace

void fill_uniform_bf16(bf16* p, int64_t n, float a, uint64_t seed, cudaStream_t s) {
  k_fill_uniform<<<4096, 256, 0, s>>>(p, n, a, seed);
}
void fill_const_f32(float* p, int64_t n, float v, cudaStream_t s) { k_fill_const<<<256, 256, 0, s>>>(p, n, v); }

}  // namespace ballast::cuda
