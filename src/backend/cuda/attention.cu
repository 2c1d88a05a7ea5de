// Attention over the paged KV cache (blocks of 16 positions, GQA). Two kernels:
//  - attention_rows: one block per (token, head); any mix of decode and prefill rows; also
//    the encoder-decoder cases (whole-span keys, cross tables, relative-position bias);
//  - attention_prefill: tensor-core (wmma bf16) flash-style tiles of 64 query rows of
//    one sequence, online softmax, K/V tiles of 64 keys streamed through shared memory.
// Block-table entries are bounds-checked: a bad entry raises flags->bad_kv_slot and is
// skipped (never read), never an assert.
#include <mma.h>

#include <cfloat>
#include <cstdlib>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
constexpr int kBlockTokens = 16;

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ const bf16* kv_row(const bf16* cache, int64_t blk, int n_kv, int g, int j, int hd) {
  return cache + ((blk * n_kv + g) * kBlockTokens + (j % kBlockTokens)) * static_cast<int64_t>(hd);
}

// grid (n, n_heads), block 128. smem: scores[max_ctx] | q[hd] | acc[groups][hd] | red[64]
__global__ void k_attn_rows(AttnArgs a) {
  extern __shared__ float sm[];
  const int t = a.row_ids ? a.row_ids[blockIdx.x] : blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
  const int group = a.n_heads / a.n_kv, g = h / group;
  const int qd = a.n_heads * a.hd, kd = a.n_kv * a.hd;
  const int qpos = a.pos[t];
  const int srow = a.seq_slot[t];
  int start, len;
  if (a.kv_len) {
    // A whole span (encoder / cross-attention): keys [0, kv_len[row]). Clamped to the
    // scores buffer and the table width, so no plan can make it read out of bounds.
    start = 0;
    len = max(0, min(a.kv_len[srow], min(a.max_ctx, a.max_blocks * kBlockTokens)));
  } else {
    const int n_ctx = qpos + 1;
    start = a.window > 0 ? max(0, n_ctx - a.window) : 0;
    len = n_ctx - start;
  }
  const int rel_w = 2 * a.rel_max + 1;
  const float* rel = a.rel_bias ? a.rel_bias + static_cast<int64_t>(h) * rel_w + a.rel_max : nullptr;
  float* sc = sm;
  float* q = sm + a.max_ctx;
  float* acc = q + a.hd;
  float* red = acc + blockDim.x * 2;
  const int q_ld = a.q_ld > 0 ? a.q_ld : qd + 2 * kd;
  const bf16* qrow = a.qkv + static_cast<int64_t>(t) * q_ld + h * a.hd;
  for (int d = tid; d < a.hd; d += blockDim.x) q[d] = __bfloat162float(qrow[d]) * a.scale;
  __syncthreads();
  const int32_t* bt = a.block_table + static_cast<int64_t>(srow) * a.max_blocks;
  float mx = -FLT_MAX;
  for (int i = tid; i < len; i += blockDim.x) {
    const int j = start + i;
    const int64_t blk = bt[j / kBlockTokens];
    float s = -INFINITY;
    if (blk >= 0 && blk < a.n_blocks) {
      const bf16* krow = kv_row(a.k_cache, blk, a.n_kv, g, j, a.hd);
      float dot = 0.0f;
      if (a.hd % 8 == 0) {
        const uint4* kp = reinterpret_cast<const uint4*>(krow);
        for (int c = 0; c < a.hd / 8; ++c) {
          uint4 u = kp[c];
          const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float2 f = __bfloat1622float2(b2[e]);
            dot += q[c * 8 + 2 * e] * f.x + q[c * 8 + 2 * e + 1] * f.y;
          }
        }
      } else {  // tiny head dims (test fixtures): scalar loads
        for (int d = 0; d < a.hd; ++d) dot += q[d] * __bfloat162float(krow[d]);
      }
      s = dot;
      if (rel) s += rel[min(max(j - qpos, -a.rel_max), a.rel_max)];  // after scaling, before softmax
    } else {
      atomicAdd(&a.flags->bad_kv_slot, 1);
    }
    sc[i] = s;
    mx = fmaxf(mx, s);
  }
  // block max
  mx = warp_max(mx);
  const int warp = tid >> 5, lane = tid & 31, nw = blockDim.x >> 5;
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = lane < nw ? red[lane] : -FLT_MAX;
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int i = tid; i < len; i += blockDim.x) {
    const float p = sc[i] == -INFINITY ? 0.0f : __expf(sc[i] - mx);
    sc[i] = p;
    sum += p;
  }
  sum = warp_sum(sum);
  __syncthreads();
  if (lane == 0) red[32 + warp] = sum;
  __syncthreads();  // also publishes sc[]
  sum = lane < nw ? red[32 + lane] : 0.0f;
  sum = warp_sum(sum);
  // P @ V: threads split over (dim pairs, key groups).
  const int pairs = a.hd / 2, groups = blockDim.x / pairs;
  const int d2 = tid % pairs, grp = tid / pairs;
  float2 o = make_float2(0.0f, 0.0f);
  if (grp < groups) {
    for (int i = grp; i < len; i += groups) {
      const float p = sc[i];
      if (p == 0.0f) continue;
      const int j = start + i;
      const int64_t blk = bt[j / kBlockTokens];
      const __nv_bfloat162* vp =
          reinterpret_cast<const __nv_bfloat162*>(kv_row(a.v_cache, blk, a.n_kv, g, j, a.hd));
      const float2 v = __bfloat1622float2(vp[d2]);
      o.x += p * v.x;
      o.y += p * v.y;
    }
    acc[grp * a.hd + 2 * d2] = o.x;
    acc[grp * a.hd + 2 * d2 + 1] = o.y;
  }
  __syncthreads();
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  bf16* out = a.out + static_cast<int64_t>(t) * qd + h * a.hd;
  for (int d = tid; d < a.hd; d += blockDim.x) {
    float v = 0.0f;
    for (int gi = 0; gi < groups; ++gi) v += acc[gi * a.hd + d];
    out[d] = __float2bfloat16(v * inv);
  }
}

// ---- tensor-core prefill --------------------------------------------------------
namespace wmma = nvcuda::wmma;
constexpr int kTile = 64;

template <int HD>
struct PrefillSmem {
  static constexpr int kLd = HD + 8;     // bf16 rows (Q, K, V)
  static constexpr int kLdS = kTile + 4; // f32 scores
  static constexpr int kLdP = kTile + 8; // bf16 probabilities
  static constexpr int kLdO = HD + 4;    // f32 output accumulator
  static constexpr size_t q = 0;
  static constexpr size_t k = q + kTile * kLd * 2;
  static constexpr size_t v = k + kTile * kLd * 2;
  static constexpr size_t s = v + kTile * kLd * 2;
  static constexpr size_t p = s + kTile * kLdS * 4;
  static constexpr size_t o = p + kTile * kLdP * 2;
  static constexpr size_t ml = o + kTile * kLdO * 4;
  static constexpr size_t bytes = ml + 2 * kTile * 4;
};

// grid (n_tiles, n_heads), block 128 (4 warps; warp w owns query rows 16w..16w+15).
template <int HD>
__global__ void __launch_bounds__(128) k_attn_prefill(AttnArgs a, const PrefillTile* tiles) {
  using L = PrefillSmem<HD>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem + L::q);
  bf16* Ks = reinterpret_cast<bf16*>(smem + L::k);
  bf16* Vs = reinterpret_cast<bf16*>(smem + L::v);
  float* S = reinterpret_cast<float*>(smem + L::s);
  bf16* P = reinterpret_cast<bf16*>(smem + L::p);
  float* O = reinterpret_cast<float*>(smem + L::o);
  float* M = reinterpret_cast<float*>(smem + L::ml);
  float* Lsum = M + kTile;
  const PrefillTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = h / (a.n_heads / a.n_kv);
  const int qd = a.n_heads * a.hd, kd = a.n_kv * a.hd, ld_qkv = qd + 2 * kd;
  constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  // Q tile (rows beyond tile.rows zero), O = 0, m = -inf, l = 0.
  for (int c = tid; c < kTile * kChunks; c += 128) {
    const int r = c / kChunks, cc = c % kChunks;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < tile.rows)
      val = *reinterpret_cast<const uint4*>(a.qkv + static_cast<int64_t>(tile.tok0 + r) * ld_qkv + h * HD + cc * 8);
    *reinterpret_cast<uint4*>(Qs + r * L::kLd + cc * 8) = val;
  }
  for (int i = tid; i < kTile * L::kLdO; i += 128) O[i] = 0.0f;
  if (tid < kTile) {
    M[tid] = -INFINITY;
    Lsum[tid] = 0.0f;
  }
  const int32_t* bt = a.block_table + static_cast<int64_t>(tile.slot) * a.max_blocks;
  const int kmax = tile.pos0 + tile.rows - 1;  // last key any row may see
  const int n_ktiles = kmax / kTile + 1;
  const float scale_log2 = a.scale * 1.4426950408889634f;
  for (int kt = 0; kt < n_ktiles; ++kt) {
    const int k0 = kt * kTile;
    __syncthreads();  // previous tile's K/V/P consumers done; Q/O init visible
    for (int c = tid; c < kTile * kChunks; c += 128) {
      const int r = c / kChunks, cc = c % kChunks, j = k0 + r;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (j <= kmax) {
        const int64_t blk = bt[j / kBlockTokens];
        if (blk >= 0 && blk < a.n_blocks) {
          kv = *reinterpret_cast<const uint4*>(kv_row(a.k_cache, blk, a.n_kv, g, j, HD) + cc * 8);
          vv = *reinterpret_cast<const uint4*>(kv_row(a.v_cache, blk, a.n_kv, g, j, HD) + cc * 8);
        } else if (cc == 0) {
          atomicAdd(&a.flags->bad_kv_slot, 1);
        }
      }
      *reinterpret_cast<uint4*>(Ks + r * L::kLd + cc * 8) = kv;
      *reinterpret_cast<uint4*>(Vs + r * L::kLd + cc * 8) = vv;
    }
    __syncthreads();
    // S (16 rows of this warp, 64 keys) = Q K^T
    for (int ct = 0; ct < kTile / 16; ++ct) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, Qs + warp * 16 * L::kLd + kk * 16, L::kLd);
        wmma::load_matrix_sync(fb, Ks + ct * 16 * L::kLd + kk * 16, L::kLd);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(S + warp * 16 * L::kLdS + ct * 16, acc, L::kLdS, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax: two lanes per row, 32 columns each.
    {
      const int r = warp * 16 + (lane >> 1), half = lane & 1;
      const int qpos = tile.pos0 + r;
      const int lo = a.window > 0 ? qpos - a.window + 1 : 0;
      float* srow = S + r * L::kLdS + half * 32;
      float mloc = -INFINITY;
      for (int c = 0; c < 32; ++c) {
        const int j = k0 + half * 32 + c;
        const float v = (r < tile.rows && j <= qpos && j >= lo) ? srow[c] * scale_log2 : -INFINITY;
        srow[c] = v;
        mloc = fmaxf(mloc, v);
      }
      mloc = fmaxf(mloc, __shfl_xor_sync(0xffffffffu, mloc, 1));
      const float mold = M[r];
      const float mnew = fmaxf(mold, mloc);
      const float alpha = mnew == -INFINITY ? 1.0f : exp2f(mold - mnew);
      float lsum = 0.0f;
      bf16* prow = P + r * L::kLdP + half * 32;
      for (int c = 0; c < 32; ++c) {
        const float p = srow[c] == -INFINITY ? 0.0f : exp2f(srow[c] - mnew);
        prow[c] = __float2bfloat16(p);
        lsum += p;
      }
      lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
      float* orow = O + r * L::kLdO + half * (HD / 2);
      for (int d = 0; d < HD / 2; ++d) orow[d] *= alpha;
      __syncwarp();
      if (half == 0) {
        M[r] = mnew;
        Lsum[r] = Lsum[r] * alpha + lsum;
      }
    }
    __syncwarp();
    // O (16 rows, HD) += P V
    for (int dt = 0; dt < HD / 16; ++dt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, O + warp * 16 * L::kLdO + dt * 16, L::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTile / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, P + warp * 16 * L::kLdP + kk * 16, L::kLdP);
        wmma::load_matrix_sync(fb, Vs + kk * 16 * L::kLd + dt * 16, L::kLd);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(O + warp * 16 * L::kLdO + dt * 16, acc, L::kLdO, wmma::mem_row_major);
    }
  }
  __syncthreads();
  for (int i = tid; i < tile.rows * HD; i += 128) {
    const int r = i / HD, d = i % HD;
    const float l = Lsum[r];
    const float v = l > 0.0f ? O[r * L::kLdO + d] / l : 0.0f;
    a.out[static_cast<int64_t>(tile.tok0 + r) * qd + h * HD + d] = __float2bfloat16(v);
  }
}

template <int HD>
void launch_prefill(const AttnArgs& a, const PrefillTile* tiles, int n_tiles, cudaStream_t s) {
  using L = PrefillSmem<HD>;
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(k_attn_prefill<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(L::bytes));
    configured = true;
  }
  dim3 grid(n_tiles, a.n_heads);
  k_attn_prefill<HD><<<grid, 128, L::bytes, s>>>(a, tiles);
}
}  // namespace

void attention_rows(const AttnArgs& a, cudaStream_t s) {
  static int configured_bytes = 48 * 1024;
  const size_t bytes = (static_cast<size_t>(a.max_ctx) + a.hd + 128 * 2 + 64) * sizeof(float);
  if (bytes > static_cast<size_t>(configured_bytes)) {
    cudaFuncSetAttribute(k_attn_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    configured_bytes = static_cast<int>(bytes);
  }
  dim3 grid(a.n, a.n_heads);
  k_attn_rows<<<grid, 128, bytes, s>>>(a);
}

void attention_prefill(const AttnArgs& a, const PrefillTile* tiles, int n_tiles, cudaStream_t s) {
  // mma.sync flash-attention-2 kernel for head_dim 64/128 (BALLAST_CUDA_NO_MMA_PREFILL=1:
  // the wmma kernel below, kept for head_dim 256).
  static const bool no_mma = env_on("BALLAST_CUDA_NO_MMA_PREFILL");
  if (!no_mma && attention_prefill_mma(a, tiles, n_tiles, s)) return;
  if (a.hd == 64) launch_prefill<64>(a, tiles, n_tiles, s);
  else if (a.hd == 128) launch_prefill<128>(a, tiles, n_tiles, s);
  else if (a.hd == 256) launch_prefill<256>(a, tiles, n_tiles, s);
}

}  // namespace ballast::cuda
