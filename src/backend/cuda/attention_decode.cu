// Decode attention over the paged KV cache (flash-decoding style): one block per
// (kv head, query row, key split); the block's 4 warps stream keys of its split, each key
// read once for all the query heads of its GQA group, with an online softmax per head.
// More than one split: partial (max, sum, unnormalized output) per split; the last block
// of a (row, kv head) to finish merges them (an atomic ticket). Block-table entries are bounds-checked (flag, never read), no asserts.
#include <algorithm>
#include <cfloat>
#include <type_traits>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
constexpr int kBlockTokens = 16;
constexpr int kWarps = 4;
constexpr int kMaxGroup = 8;
constexpr float kLog2e = 1.4426950408889634f;

template <int E>
__device__ __forceinline__ void load_vec(const bf16* p, float (&out)[E]) {
  if constexpr (E == 2) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
    out[0] = f.x;
    out[1] = f.y;
  } else {
    // E = 4: 8 bytes; E = 8: 16 bytes.
    using V = typename std::conditional<E == 4, uint2, uint4>::type;
    const V v = *reinterpret_cast<const V*>(p);
    const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < E / 2; ++i) {
      const float2 f = __bfloat1622float2(b[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
}

// grid (n_kv, n_rows, splits), block 128. Lane l owns dims [l*E, l*E + E) of the head.
// part_o: (n_rows, n_heads, splits, HD) f32; part_ml: (n_rows, n_heads, splits, 2).
template <int HD>
__global__ void __launch_bounds__(128) k_attn_decode(AttnArgs a, int splits, float* part_o, float* part_ml,
                                                     int* counters) {
  allow_dependents();
  constexpr int E = HD / 32;
  __shared__ float s_m[kWarps][kMaxGroup], s_l[kWarps][kMaxGroup];
  __shared__ float s_o[kWarps][kMaxGroup][HD];
  const int kvh = blockIdx.x, r = blockIdx.y, split = blockIdx.z;
  const int t = a.row_ids ? a.row_ids[r] : r;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int G = a.n_heads / a.n_kv;
  const int qd = a.n_heads * a.hd, kd = a.n_kv * a.hd;
  const int n_ctx = a.pos[t] + 1;
  const int start = a.window > 0 ? max(0, n_ctx - a.window) : 0;
  const int len = n_ctx - start;
  const int per = (len + splits - 1) / splits;
  const int k_begin = start + split * per, k_end = min(n_ctx, k_begin + per);
  // q of the group's heads, pre-scaled for exp2.
  float q[kMaxGroup][E];
  const bf16* qrow = a.qkv + static_cast<int64_t>(t) * (qd + 2 * kd) + kvh * G * HD;
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g < G) {
      load_vec<E>(qrow + g * HD + lane * E, q[g]);
#pragma unroll
      for (int e = 0; e < E; ++e) q[g][e] *= a.scale * kLog2e;
    }
  }
  float m[kMaxGroup], l[kMaxGroup], o[kMaxGroup][E];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) o[g][e] = 0.0f;
  }
  const int32_t* bt = a.block_table + static_cast<int64_t>(a.seq_slot[t]) * a.max_blocks;
  // Each warp takes runs of kU consecutive keys; all kU K/V rows are loaded before any
  // is used, so the loads of a run overlap (decode attention is latency-bound).
  constexpr int kU = 4;
  for (int j0 = k_begin + warp * kU; j0 < k_end; j0 += kWarps * kU) {
    float kv[kU][E], vv[kU][E];
    bool ok[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int j = j0 + u;
      ok[u] = false;
      if (j >= k_end) continue;
      const int64_t blk = bt[j / kBlockTokens];
      if (blk < 0 || blk >= a.n_blocks) {
        if (lane == 0) atomicAdd(&a.flags->bad_kv_slot, 1);
        continue;
      }
      ok[u] = true;
      const int64_t off = ((blk * a.n_kv + kvh) * kBlockTokens + (j % kBlockTokens)) * static_cast<int64_t>(HD) + lane * E;
      load_vec<E>(a.k_cache + off, kv[u]);
      load_vec<E>(a.v_cache + off, vv[u]);
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (!ok[u]) continue;
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g >= G) break;
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) s = fmaf(q[g][e], kv[u][e], s);
#pragma unroll
        for (int x = 16; x > 0; x >>= 1) s += __shfl_xor_sync(0xffffffffu, s, x);
        const float mn = fmaxf(m[g], s);
        const float alpha = exp2f(m[g] - mn);  // m = -inf first: alpha 0
        const float p = exp2f(s - mn);
        l[g] = l[g] * alpha + p;
#pragma unroll
        for (int e = 0; e < E; ++e) o[g][e] = fmaf(o[g][e], alpha, p * vv[u][e]);
        m[g] = mn;
      }
    }
  }
  // Merge the 4 warps.
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= G) break;
    if (lane == 0) s_m[warp][g] = m[g], s_l[warp][g] = l[g];
#pragma unroll
    for (int e = 0; e < E; ++e) s_o[warp][g][lane * E + e] = o[g][e];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
    const int g = i / HD, d = i % HD;
    float M = -INFINITY;
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w][g]);
    float L = 0.0f, O = 0.0f;
    if (M != -INFINITY) {
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(s_m[w][g] - M);
        L += s_l[w][g] * f;
        O += s_o[w][g][d] * f;
      }
    }
    const int h = kvh * G + g;
    if (splits == 1) {
      a.out[static_cast<int64_t>(t) * qd + h * HD + d] = __float2bfloat16(L > 0.0f ? O / L : 0.0f);
    } else {
      const int64_t p = (static_cast<int64_t>(r) * a.n_heads + h) * splits + split;
      part_o[p * HD + d] = O;
      if (d == 0) part_ml[2 * p] = M, part_ml[2 * p + 1] = L;
    }
  }
  if (splits == 1) return;
  // The last split block of this (row, kv head) to finish merges all splits (no second
  // kernel); it resets the counter for the next step.
  __shared__ int s_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* c = counters + static_cast<int64_t>(r) * a.n_kv + kvh;
    s_last = atomicAdd(c, 1) == splits - 1;
    if (s_last) *c = 0;
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
    const int g = i / HD, d = i % HD, h = kvh * G + g;
    const int64_t p0 = (static_cast<int64_t>(r) * a.n_heads + h) * splits;
    float M = -INFINITY;
    for (int sp = 0; sp < splits; ++sp) M = fmaxf(M, __ldcg(part_ml + 2 * (p0 + sp)));
    float L = 0.0f, O = 0.0f;
    if (M != -INFINITY) {
      for (int sp = 0; sp < splits; ++sp) {
        const float f = exp2f(__ldcg(part_ml + 2 * (p0 + sp)) - M);
        L += __ldcg(part_ml + 2 * (p0 + sp) + 1) * f;
        O += __ldcg(part_o + (p0 + sp) * HD + d) * f;
      }
    }
    a.out[static_cast<int64_t>(t) * qd + h * HD + d] = __float2bfloat16(L > 0.0f ? O / L : 0.0f);
  }
}

}  // namespace

bool attention_decode_supported(int hd, int n_heads, int n_kv) {
  return (hd == 64 || hd == 128 || hd == 256) && n_heads % n_kv == 0 && n_heads / n_kv <= kMaxGroup;
}

int attention_decode_splits(int n_rows, int n_kv, int max_ctx) {
  const int want = (2 * 132 + n_rows * n_kv - 1) / (n_rows * n_kv);  // ~2 blocks per SM
  const int by_len = (max_ctx + 31) / 32;                              // >= 32 keys per split
  return std::max(1, std::min({want, by_len, 32}));
}

void attention_decode(const AttnArgs& a, int splits, float* part_o, float* part_ml, int* counters, cudaStream_t s) {
  const dim3 grid(a.n_kv, a.n, splits);
  if (a.hd == 64) k_attn_decode<64><<<grid, 128, 0, s>>>(a, splits, part_o, part_ml, counters);
  else if (a.hd == 128) k_attn_decode<128><<<grid, 128, 0, s>>>(a, splits, part_o, part_ml, counters);
  else k_attn_decode<256><<<grid, 128, 0, s>>>(a, splits, part_o, part_ml, counters);
}

}  // namespace ballast::cuda
