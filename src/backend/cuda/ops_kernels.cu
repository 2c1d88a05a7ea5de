// Small kernels for the op interface (see ops_kernels.h). Bandwidth-bound one-pass
// kernels; correctness over speed: the hot decode path stays in the fused GEMVs.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/ops_kernels.h"

#include "backend/cuda/block_reduce.cuh"

namespace ballast::cuda {

namespace {

template <bool kF32>
__device__ __forceinline__ float load(const void* p, int64_t i) {
  if constexpr (kF32) return static_cast<const float*>(p)[i];
  else return __bfloat162float(static_cast<const bf16*>(p)[i]);
}

__device__ __forceinline__ float act_fn(float a, ActCode act) {
  switch (act) {
    case ActCode::kSilu: return a / (1.0f + __expf(-a));
    case ActCode::kGeluTanh: {
      const float k0 = 0.7978845608028654f, k1 = 0.044715f;
      return 0.5f * a * (1.0f + tanhf(k0 * (a + k1 * a * a * a)));
    }
    case ActCode::kGeluErf: return 0.5f * a * (1.0f + erff(a * 0.7071067811865476f));
    case ActCode::kRelu: return fmaxf(a, 0.0f);
  }
  return a;
}

// Grid for a grid-stride elementwise kernel over `count` elements, block 256.
int grid_for(int64_t count) { return static_cast<int>(std::clamp<int64_t>((count + 255) / 256, 1, 4096)); }

// grid: n tokens; block 256.
__global__ void k_embed_positions(const bf16* table, int64_t rows, int H, const int32_t* pos, float* x,
                                  ErrorFlags* flags) {
  const int t = blockIdx.x;
  const int32_t p = pos[t];
  float* out = x + static_cast<int64_t>(t) * H;
  if (p < 0 || p >= rows) {
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[i] = 0.0f;
    if (threadIdx.x == 0) atomicAdd(&flags->bad_position, 1);
    return;
  }
  const bf16* row = table + static_cast<int64_t>(p) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[i] = __bfloat162float(row[i]);
}

// grid: output rows; block 256. Two passes over the (L2-resident) row for LayerNorm's
// mean, one more for the output; RMSNorm skips the mean (mean = 0 exactly, so the
// result equals rmsnorm's x * inv * w).
template <bool kF32, bool kLayer>
__global__ void k_norm_rows(NormRowsArgs a) {
  __shared__ float red[32];
  const int cols = a.cols;
  const int64_t src = static_cast<int64_t>(a.idx ? a.idx[blockIdx.x] : static_cast<int32_t>(blockIdx.x)) * cols;
  float mean = 0.0f;
  if constexpr (kLayer) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += load<kF32>(a.x, src + i);
    mean = block_sum(s, red) / static_cast<float>(cols);
  }
  float ss = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = load<kF32>(a.x, src + i) - mean;
    ss += v * v;
  }
  ss = block_sum(ss, red);
  const float inv = rsqrtf(ss / static_cast<float>(cols) + a.eps);
  bf16* out = a.out + static_cast<int64_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = (load<kF32>(a.x, src + i) - mean) * inv * (a.w ? a.w[i] : 1.0f);
    if (a.b) v += a.b[i];
    out[i] = __float2bfloat16(v);
  }
}

// grid: n rows; block 256. The first half of k_add_postnorm_rmsnorm (same rounding).
__global__ void k_add_rmsnorm_delta(float* x, const bf16* delta, const float* w, int H, float eps) {
  __shared__ float red[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * H;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    const float d = __bfloat162float(delta[base + i]);
    ss += d * d;
  }
  ss = block_sum(ss, red);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(H) + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x)
    x[base + i] += __bfloat162float(delta[base + i]) * inv * w[i];
}

template <bool kRF32, bool kYF32>
__global__ void k_add_rows(void* r, const void* y, const float* bias, int64_t count, int cols) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = load<kYF32>(y, i);
    if (bias) v += bias[i % cols];
    if constexpr (kRF32) static_cast<float*>(r)[i] += v;
    else {
      bf16* rb = static_cast<bf16*>(r);
      rb[i] = __float2bfloat16(__bfloat162float(rb[i]) + v);
    }
  }
}

__global__ void k_bias_add(bf16* y, const float* bias, int64_t count, int cols) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + bias[i % cols]);
}

__global__ void k_to_bf16(const float* x, int64_t count, bf16* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(x[i]);
}

template <bool kF32>
__global__ void k_activation(const void* x, int64_t count, ActCode act, bf16* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(act_fn(load<kF32>(x, i), act));
}

// grid (ceil(F / 1024), n), block 256: out[t, i] = act(gu[t, i]) * gu[t, F + i].
__global__ void k_glu(const bf16* gu, int F, ActCode act, bf16* out) {
  const int t = blockIdx.y;
  const bf16* g = gu + static_cast<int64_t>(t) * 2 * F;
  const bf16* u = g + F;
  bf16* o = out + static_cast<int64_t>(t) * F;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < F; i += gridDim.x * blockDim.x)
    o[i] = __float2bfloat16(act_fn(__bfloat162float(g[i]), act) * __bfloat162float(u[i]));
}

// The same with 16-byte accesses (F % 8 == 0, rows 16-byte aligned): grid (ceil(F / 2048), n),
// block 256, 8 elements a thread. Memory-bound: prefill's 2 x n x F reads dominate.
__global__ void k_glu8(const bf16* gu, int F, ActCode act, bf16* out) {
  const int t = blockIdx.y;
  const uint4* g = reinterpret_cast<const uint4*>(gu + static_cast<int64_t>(t) * 2 * F);
  const uint4* u = reinterpret_cast<const uint4*>(gu + static_cast<int64_t>(t) * 2 * F + F);
  uint4* o = reinterpret_cast<uint4*>(out + static_cast<int64_t>(t) * F);
  const int F8 = F / 8;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < F8; i += gridDim.x * blockDim.x) {
    const uint4 gv = g[i], uv = u[i];
    const __nv_bfloat162* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
    const __nv_bfloat162* u2 = reinterpret_cast<const __nv_bfloat162*>(&uv);
    uint4 ov;
    __nv_bfloat162* o2 = reinterpret_cast<__nv_bfloat162*>(&ov);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 a = __bfloat1622float2(g2[k]), b = __bfloat1622float2(u2[k]);
      o2[k] = __floats2bfloat162_rn(act_fn(a.x, act) * b.x, act_fn(a.y, act) * b.y);
    }
    o[i] = ov;
  }
}

__global__ void k_softcap(float* y, int64_t count, float cap) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = cap * tanhf(y[i] / cap);
}
}  // namespace

void embed_positions(const bf16* table, int64_t rows, int H, const int32_t* pos, int n, float* x, ErrorFlags* flags,
                     cudaStream_t s) {
  if (n <= 0) return;
  k_embed_positions<<<n, 256, 0, s>>>(table, rows, H, pos, x, flags);
}

void norm_rows(const NormRowsArgs& a, cudaStream_t s) {
  if (a.rows <= 0) return;
  if (a.x_f32) {
    if (a.layer) k_norm_rows<true, true><<<a.rows, 256, 0, s>>>(a);
    else k_norm_rows<true, false><<<a.rows, 256, 0, s>>>(a);
  } else {
    if (a.layer) k_norm_rows<false, true><<<a.rows, 256, 0, s>>>(a);
    else k_norm_rows<false, false><<<a.rows, 256, 0, s>>>(a);
  }
}

void add_rmsnorm_delta(float* x, const bf16* delta, const float* w, int n, int H, float eps, cudaStream_t s) {
  if (n <= 0) return;
  k_add_rmsnorm_delta<<<n, 256, 0, s>>>(x, delta, w, H, eps);
}

void add_rows(void* r, bool r_f32, const void* y, bool y_f32, const float* bias, int64_t n, int cols, cudaStream_t s) {
  const int64_t count = n * cols;
  if (count <= 0) return;
  const int g = grid_for(count);
  if (r_f32 && y_f32) k_add_rows<true, true><<<g, 256, 0, s>>>(r, y, bias, count, cols);
  else if (r_f32) k_add_rows<true, false><<<g, 256, 0, s>>>(r, y, bias, count, cols);
  else if (y_f32) k_add_rows<false, true><<<g, 256, 0, s>>>(r, y, bias, count, cols);
  else k_add_rows<false, false><<<g, 256, 0, s>>>(r, y, bias, count, cols);
}

void bias_add_bf16(bf16* y, const float* bias, int64_t n, int cols, cudaStream_t s) {
  const int64_t count = n * cols;
  if (count <= 0) return;
  k_bias_add<<<grid_for(count), 256, 0, s>>>(y, bias, count, cols);
}

void to_bf16(const float* x, int64_t count, bf16* out, cudaStream_t s) {
  if (count <= 0) return;
  k_to_bf16<<<grid_for(count), 256, 0, s>>>(x, count, out);
}

void activation(const void* x, bool x_f32, int64_t count, ActCode act, bf16* out, cudaStream_t s) {
  if (count <= 0) return;
  if (x_f32) k_activation<true><<<grid_for(count), 256, 0, s>>>(x, count, act, out);
  else k_activation<false><<<grid_for(count), 256, 0, s>>>(x, count, act, out);
}

void glu(const bf16* gu, int n, int F, ActCode act, bf16* out, cudaStream_t s) {
  if (n <= 0 || F <= 0) return;
  const bool vec = F % 8 == 0 && reinterpret_cast<uintptr_t>(gu) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (vec) k_glu8<<<dim3((F / 8 + 255) / 256, n), 256, 0, s>>>(gu, F, act, out);
  else k_glu<<<dim3((F + 1023) / 1024, n), 256, 0, s>>>(gu, F, act, out);
}

void softcap_f32(float* y, int64_t count, float cap, cudaStream_t s) {
  if (count <= 0) return;
  k_softcap<<<grid_for(count), 256, 0, s>>>(y, count, cap);
}

}  // namespace ballast::cuda
