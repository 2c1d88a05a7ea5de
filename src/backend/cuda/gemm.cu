// Linear layers: Y (n, N) = X (n, K) @ W (N, K)^T with bf16 operands, fp32 accumulate.
// n <= 8 (decode at small batch): a bandwidth-bound GEMV that streams each weight row
// once with 16-byte loads; larger n: cuBLAS (tensor cores).
#include <cstdio>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
__device__ __forceinline__ void store_out(bf16* y, float v) { *y = __float2bfloat16(v); }
__device__ __forceinline__ void store_out(float* y, float v) { *y = v; }

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  const __nv_bfloat162* a = reinterpret_cast<const __nv_bfloat162*>(&w);
  const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&x);
  float s = 0.0f;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 fa = __bfloat1622float2(a[e]), fb = __bfloat1622float2(b[e]);
    s = fmaf(fa.x, fb.x, s);
    s = fmaf(fa.y, fb.y, s);
  }
  return s;
}

// One warp per output row; NT activation rows. Requires K % 8 == 0.
template <int NT, typename OutT>
__global__ void __launch_bounds__(256) k_gemv(const bf16* __restrict__ W, int N, int K, const bf16* __restrict__ X,
                                              OutT* __restrict__ Y) {
  const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= N) return;
  const uint4* w = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(row) * K);
  const int chunks = K / 8;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  int c = lane;
  for (; c + 96 < chunks; c += 128) {
    uint4 wv[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) wv[u] = __ldcs(w + c + u * 32);  // streamed once: skip L1 retention
#pragma unroll
    for (int u = 0; u < 4; ++u)
#pragma unroll
      for (int t = 0; t < NT; ++t)
        acc[t] += dot8(wv[u], __ldg(reinterpret_cast<const uint4*>(X + static_cast<int64_t>(t) * K) + c + u * 32));
  }
  for (; c < chunks; c += 32) {
    const uint4 wv = __ldcs(w + c);
#pragma unroll
    for (int t = 0; t < NT; ++t)
      acc[t] += dot8(wv, __ldg(reinterpret_cast<const uint4*>(X + static_cast<int64_t>(t) * K) + c));
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float v = acc[t];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) store_out(Y + static_cast<int64_t>(t) * N + row, v);
  }
}

template <typename OutT>
bool gemv(const bf16* W, int N, int K, const bf16* X, int n, OutT* Y, cudaStream_t s) {
  if (K % 8 != 0 || n > 8) return false;
  const dim3 grid((N + 7) / 8);
  switch (n) {
    case 1: k_gemv<1, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
    case 2: k_gemv<2, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
    case 3: k_gemv<3, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
    case 4: k_gemv<4, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
    case 5: k_gemv<5, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
    case 6: k_gemv<6, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
    case 7: k_gemv<7, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
    default: k_gemv<8, OutT><<<grid, 256, 0, s>>>(W, N, K, X, Y); return true;
  }
}

void cublas_gemm(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, void* Y, cudaDataType yt,
                 cudaStream_t s) {
  const float alpha = 1.0f, beta = 0.0f;
  cublasSetStream(h, s);
  // Column-major view: Y^T (N x n) = W^T^T ... i.e. op(W)=T over the (K x N) column-major W.
  cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, n, K, &alpha, W, CUDA_R_16BF, K, X, CUDA_R_16BF, K,
                                   &beta, Y, yt, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) std::fprintf(stderr, "cublasGemmEx failed: status %d (N=%d K=%d n=%d)\n", (int)st, N, K, n);
}
}  // namespace

void gemm_bf16(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, bf16* Y, cudaStream_t s) {
  if (gemv(W, N, K, X, n, Y, s)) return;
  cublas_gemm(h, W, N, K, X, n, Y, CUDA_R_16BF, s);
}

void gemm_bf16_f32out(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, float* Y, cudaStream_t s) {
  if (gemv(W, N, K, X, n, Y, s)) return;
  cublas_gemm(h, W, N, K, X, n, Y, CUDA_R_32F, s);
}

}  // namespace ballast::cuda
