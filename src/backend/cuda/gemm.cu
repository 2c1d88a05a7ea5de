// Linear layers: Y (n, N) = X (n, K) @ W (N, K)^T with bf16 operands, fp32 accumulate.
// n <= gemv_route_max_tokens() (single-token decode by default; the kernel takes n <= 8): a
// bandwidth-bound GEMV that streams each weight row once with 16-byte loads, with optional
// fusions (see GemvArgs); larger n: cuBLAS.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/cuda/kernels.h"

#include "backend/cuda/cublas_api.h"

namespace ballast::cuda {

namespace {
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

__device__ __forceinline__ float bf16_round(float v) { return __bfloat162float(__float2bfloat16(v)); }

__device__ __forceinline__ float glu_act(float g, bool gelu) {
  if (gelu) {
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    return 0.5f * g * (1.0f + tanhf(k0 * (g + k1 * g * g * g)));
  }
  return g / (1.0f + __expf(-g));
}

constexpr int kWarpsPerBlock = 8;

// grid ceil(N / (8 / wpr)), block 256: wpr warps per output row (GLU pairs: per gate/up
// row pair). NT: activation rows handled (n <= NT; rows >= n idle).
// kNorm: X rows = bf16(rmsnorm(xf) * (offset + w)) built in shared memory first, exactly
// as the rmsnorm kernel rounds them. Epilogues: store bf16/f32, add into the f32
// residual (Y += bf16(v), as the unfused add does), or GLU pairs (rows i and N + i of
// W give gate and up; Y = bf16(act(bf16(gate)) * bf16(up))).
template <int NT, bool kNorm, GemvEpi kEpi>
__global__ void __launch_bounds__(256) k_gemv(GemvArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int K = a.K, n = a.n;
  const bf16* X = a.X;
  // wpr warps share a row (split over K) so short matrices still fill the GPU.
  const int wpr = a.wpr, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, part = warp % wpr;
  const int row = blockIdx.x * (kWarpsPerBlock / wpr) + warp / wpr;
  const bool active = row < a.N;
  constexpr bool kPair = kEpi == GemvEpi::kSwiGlu || kEpi == GemvEpi::kGeGlu;
  constexpr int R = kPair ? 2 : 1;  // weight rows per warp
  // Launched with programmatic dependent launch: the weights do not depend on the
  // previous kernel, so this warp's weight rows are prefetched into L2 while that kernel
  // finishes; griddepcontrol.wait then orders every activation read after it.
  if (active) {
    const int lines = K / 64;  // 128-byte lines of one weight row
    for (int r = 0; r < R; ++r) {
      const char* base = reinterpret_cast<const char*>(a.W + static_cast<int64_t>(row + r * a.N) * K);
      for (int li = part * 32 + lane; li < lines; li += wpr * 32)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(base + static_cast<int64_t>(li) * 128));
    }
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");  // the next GEMV may start prefetching
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  if constexpr (kNorm) {
    bf16* xs = reinterpret_cast<bf16*>(smem);  // (n, K)
    __shared__ float red[8][NT];
    float ss[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      ss[t] = 0.0f;
      if (t < n)
        for (int k = threadIdx.x; k < K; k += blockDim.x) {
          const float v = a.xf[static_cast<int64_t>(t) * K + k];
          ss[t] += v * v;
        }
      for (int o = 16; o > 0; o >>= 1) ss[t] += __shfl_xor_sync(0xffffffffu, ss[t], o);
      if (lane == 0) red[warp][t] = ss[t];
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t >= n) break;
      float s = 0.0f;
      for (int w = 0; w < 8; ++w) s += red[w][t];
      const float inv = rsqrtf(s / static_cast<float>(K) + a.eps);
      for (int k = threadIdx.x; k < K; k += blockDim.x)
        xs[t * K + k] = __float2bfloat16(a.xf[static_cast<int64_t>(t) * K + k] * inv * (a.offset + a.norm_w[k]));
    }
    __syncthreads();
    X = xs;
    if (a.xs_out) {  // every block holds all n rows: block b stores slice b of them
      const int64_t total = static_cast<int64_t>(n) * K, per = (total + gridDim.x - 1) / gridDim.x;
      const int64_t lo = static_cast<int64_t>(blockIdx.x) * per, hi = min(total, lo + per);
      for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) a.xs_out[i] = xs[i];
    }
  }
  const uint4* w[R];
  w[0] = reinterpret_cast<const uint4*>(a.W + static_cast<int64_t>(active ? row : 0) * K);
  if constexpr (kPair) w[R - 1] = reinterpret_cast<const uint4*>(a.W + static_cast<int64_t>((active ? row : 0) + a.N) * K);
  const int chunks = active ? K / 8 : 0;
  float acc[R][NT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
  auto xload = [&](int t, int c) { return *(reinterpret_cast<const uint4*>(X + static_cast<int64_t>(t) * K) + c); };
  constexpr int kU = 8;  // 16-byte weight loads in flight per lane and weight row
  const int S = wpr * 32;
  int c = part * 32 + lane;
  for (; c + (kU - 1) * S < chunks; c += kU * S) {
    uint4 wv[R][kU];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int u = 0; u < kU; ++u) wv[r][u] = __ldcs(w[r] + c + u * S);  // streamed once
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= n) break;
        const uint4 xv = xload(t, c + u * S);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][t] += dot8(wv[r][u], xv);
      }
  }
#pragma unroll 4
  for (; c < chunks; c += S) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = __ldcs(w[r] + c);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t >= n) break;
      const uint4 xv = xload(t, c);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][t] += dot8(wv[r], xv);
    }
  }
  __shared__ float part_sum[kWarpsPerBlock][R][NT];
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float v = acc[r][t];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) part_sum[warp][r][t] = v;
    }
  if (wpr > 1) __syncthreads();
  if (!active || part != 0 || lane != 0) return;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t >= n) break;
    float v[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      v[r] = 0.0f;
      for (int p = 0; p < wpr; ++p) v[r] += part_sum[warp + p][r][t];
    }
    const int64_t i = static_cast<int64_t>(t) * a.N + row;
    if constexpr (kEpi == GemvEpi::kStoreBf16) {
      static_cast<bf16*>(a.Y)[i] = __float2bfloat16(v[0]);
    } else if constexpr (kEpi == GemvEpi::kStoreF32) {
      static_cast<float*>(a.Y)[i] = v[0];
    } else if constexpr (kEpi == GemvEpi::kAddF32) {
      static_cast<float*>(a.Y)[i] += bf16_round(v[0]);
    } else {
      const float g = glu_act(bf16_round(v[0]), kEpi == GemvEpi::kGeGlu);
      static_cast<bf16*>(a.Y)[i] = __float2bfloat16(g * bf16_round(v[R - 1]));
    }
  }
}

// BALLAST_CUDA_PDL=0 turns programmatic dependent launch off (A/B timing, debugging).
bool pdl_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("BALLAST_CUDA_PDL");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

template <int NT, bool kNorm, GemvEpi kEpi>
void launch_gemv(const GemvArgs& a, cudaStream_t s) {
  size_t smem = 0;
  if constexpr (kNorm) {
    smem = static_cast<size_t>(a.n) * a.K * 2;  // normalized X rows
    static size_t configured = 48 * 1024;
    if (smem > configured) {
      cudaFuncSetAttribute(k_gemv<NT, kNorm, kEpi>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
      configured = smem;
    }
  }
  const int rows_per_block = kWarpsPerBlock / a.wpr;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3((a.N + rows_per_block - 1) / rows_per_block);
  cfg.blockDim = dim3(256);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  cudaLaunchKernelEx(&cfg, k_gemv<NT, kNorm, kEpi>, a);
}

template <bool kNorm, GemvEpi kEpi>
void dispatch_nt(const GemvArgs& a, cudaStream_t s) {
  if (a.n == 1) launch_gemv<1, kNorm, kEpi>(a, s);
  else if (a.n == 2) launch_gemv<2, kNorm, kEpi>(a, s);
  else if (a.n <= 4) launch_gemv<4, kNorm, kEpi>(a, s);
  else launch_gemv<8, kNorm, kEpi>(a, s);
}

template <bool kNorm>
void dispatch_epi(const GemvArgs& a, GemvEpi e, cudaStream_t s) {
  switch (e) {
    case GemvEpi::kStoreBf16: dispatch_nt<kNorm, GemvEpi::kStoreBf16>(a, s); break;
    case GemvEpi::kStoreF32: dispatch_nt<kNorm, GemvEpi::kStoreF32>(a, s); break;
    case GemvEpi::kAddF32: dispatch_nt<kNorm, GemvEpi::kAddF32>(a, s); break;
    case GemvEpi::kSwiGlu: dispatch_nt<kNorm, GemvEpi::kSwiGlu>(a, s); break;
    case GemvEpi::kGeGlu: dispatch_nt<kNorm, GemvEpi::kGeGlu>(a, s); break;
  }
}

void cublas_gemm(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, void* Y, cudaDataType yt,
                 cudaStream_t s) {
  const float alpha = 1.0f, beta = 0.0f;
  blas_set_stream(h, s);
  // Column-major view: Y^T (N x n) = op(W) X^T with op = T over the (K x N) column-major W.
  cublasStatus_t st = blas_gemm_ex(h, CUBLAS_OP_T, CUBLAS_OP_N, N, n, K, &alpha, W, CUDA_R_16BF, K, X, CUDA_R_16BF, K,
                                   &beta, Y, yt, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) std::fprintf(stderr, "cublasGemmEx failed: status %d (N=%d K=%d n=%d)\n", (int)st, N, K, n);
}
}  // namespace

int gemv_route_max_tokens() {
  static const int v = [] {
    const char* e = std::getenv("BALLAST_GEMV_MAX_TOKENS");
    return e && *e ? std::clamp(std::atoi(e), 0, kGemvMaxTokens) : 1;
  }();
  return v;
}

bool gemv_small(const GemvArgs& args, GemvEpi epi, cudaStream_t s) {
  if (args.K % 8 != 0 || args.n < 1 || args.n > kGemvMaxTokens) return false;
  GemvArgs a = args;
  // Enough warps for about half of every SM's warp slots: short matrices split K.
  static const int sms = [] {
    int dev = 0, v = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev);
    return v;
  }();
  static const int per_sm = [] {  // BALLAST_GEMV_WARPS_PER_SM: tuning knob (default 32)
    const char* e = std::getenv("BALLAST_GEMV_WARPS_PER_SM");
    return e && std::atoi(e) > 0 ? std::atoi(e) : 32;
  }();
  const int64_t want = static_cast<int64_t>(sms) * per_sm;
  a.wpr = 1;
  static const int min_chunks = [] {  // BALLAST_GEMV_MIN_CHUNKS: 16-byte chunks per lane-row (default 2)
    const char* e = std::getenv("BALLAST_GEMV_MIN_CHUNKS");
    return e && std::atoi(e) > 0 ? std::atoi(e) : 2;
  }();
  while (a.wpr < kWarpsPerBlock && static_cast<int64_t>(a.N) * a.wpr < want && a.K / 8 >= a.wpr * 32 * min_chunks)
    a.wpr *= 2;
  if (a.xf) dispatch_epi<true>(a, epi, s);
  else dispatch_epi<false>(a, epi, s);
  return true;
}

void gemm_bf16(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, bf16* Y, cudaStream_t s) {
  GemvArgs a{W, N, K, X, nullptr, nullptr, 0.0f, 0.0f, n, Y, 1};
  if (n <= gemv_route_max_tokens() && gemv_small(a, GemvEpi::kStoreBf16, s)) return;
  cublas_gemm(h, W, N, K, X, n, Y, CUDA_R_16BF, s);
}

void gemm_bf16_f32out(cublasHandle_t h, const bf16* W, int N, int K, const bf16* X, int n, float* Y, cudaStream_t s) {
  GemvArgs a{W, N, K, X, nullptr, nullptr, 0.0f, 0.0f, n, Y, 1};
  if (n <= gemv_route_max_tokens() && gemv_small(a, GemvEpi::kStoreF32, s)) return;
  cublas_gemm(h, W, N, K, X, n, Y, CUDA_R_32F, s);
}

}  // namespace ballast::cuda
