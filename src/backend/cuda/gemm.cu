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

// X element source: plain bf16 rows, or a gated MLP's [gate | up] rows (GLU fused into
// the down projection: x_k = act(gate_k) * up_k, computed on the fly from L1/L2).
enum class XMode { kPlain, kSwiGlu, kGeGlu };

template <XMode M>
__device__ __forceinline__ uint4 load_x(const bf16* __restrict__ X, int64_t row_stride, int t, int c, int K) {
  const uint4* xr = reinterpret_cast<const uint4*>(X + static_cast<int64_t>(t) * row_stride);
  if constexpr (M == XMode::kPlain) {
    return __ldg(xr + c);
  } else {
    const uint4 g = __ldg(xr + c), u = __ldg(reinterpret_cast<const uint4*>(X + static_cast<int64_t>(t) * row_stride + K) + c);
    const __nv_bfloat162* g2 = reinterpret_cast<const __nv_bfloat162*>(&g);
    const __nv_bfloat162* u2 = reinterpret_cast<const __nv_bfloat162*>(&u);
    uint4 out;
    __nv_bfloat162* o2 = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 a = __bfloat1622float2(g2[e]), b = __bfloat1622float2(u2[e]);
      float r0, r1;
      if constexpr (M == XMode::kSwiGlu) {
        r0 = a.x / (1.0f + __expf(-a.x));
        r1 = a.y / (1.0f + __expf(-a.y));
      } else {
        const float k0 = 0.7978845608028654f, k1 = 0.044715f;
        r0 = 0.5f * a.x * (1.0f + tanhf(k0 * (a.x + k1 * a.x * a.x * a.x)));
        r1 = 0.5f * a.y * (1.0f + tanhf(k0 * (a.y + k1 * a.y * a.y * a.y)));
      }
      r0 *= b.x;  // one rounding to bf16, like the unfused swiglu kernel
      r1 *= b.y;
      o2[e] = __floats2bfloat162_rn(r0, r1);
    }
    return out;
  }
}

// One warp per output row; NT activation rows (row stride xs elements). K % 8 == 0.
// Each lane keeps 8 x 16-byte weight loads in flight (bandwidth-bound decode).
template <int NT, XMode M, typename OutT>
__global__ void __launch_bounds__(256) k_gemv(const bf16* __restrict__ W, int N, int K, const bf16* __restrict__ X,
                                              int64_t xs, OutT* __restrict__ Y) {
  const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= N) return;
  const uint4* w = reinterpret_cast<const uint4*>(W + static_cast<int64_t>(row) * K);
  const int chunks = K / 8;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  int c = lane;
  constexpr int kU = 8;
  for (; c + (kU - 1) * 32 < chunks; c += kU * 32) {
    uint4 wv[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) wv[u] = __ldcs(w + c + u * 32);  // streamed once: skip L1 retention
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[t] += dot8(wv[u], load_x<M>(X, xs, t, c + u * 32, K));
  }
  for (; c < chunks; c += 32) {
    const uint4 wv = __ldcs(w + c);
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] += dot8(wv, load_x<M>(X, xs, t, c, K));
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float v = acc[t];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) store_out(Y + static_cast<int64_t>(t) * N + row, v);
  }
}

template <XMode M, typename OutT>
bool gemv(const bf16* W, int N, int K, const bf16* X, int64_t xs, int n, OutT* Y, cudaStream_t s) {
  if (K % 8 != 0 || n > 8 || n < 1) return false;
  const dim3 grid((N + 7) / 8);
  switch (n) {
    case 1: k_gemv<1, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
    case 2: k_gemv<2, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
    case 3: k_gemv<3, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
    case 4: k_gemv<4, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
    case 5: k_gemv<5, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
    case 6: k_gemv<6, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
    case 7: k_gemv<7, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
    default: k_gemv<8, M, OutT><<<grid, 256, 0, s>>>(W, N, K, X, xs, Y); return true;
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
  if (gemv<XMode::kPlain>(W, N, K, X, K, n, Y, s)) return;
  cublas_gemm(h, W, N, K, X, n, Y, CUDA_R_16BF, s);
}

void gemm_bf16_f32out(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, float* Y, cudaStream_t s) {
  if (gemv<XMode::kPlain>(W, N, K, X, K, n, Y, s)) return;
  cublas_gemm(h, W, N, K, X, n, Y, CUDA_R_32F, s);
}

bool gemv_glu_down(const bf16* W, int N, int F, const bf16* gu, int n, bool gelu_tanh, bf16* Y, cudaStream_t s) {
  return gelu_tanh ? gemv<XMode::kGeGlu>(W, N, F, gu, 2 * static_cast<int64_t>(F), n, Y, s)
                   : gemv<XMode::kSwiGlu>(W, N, F, gu, 2 * static_cast<int64_t>(F), n, Y, s);
}

}  // namespace ballast::cuda
