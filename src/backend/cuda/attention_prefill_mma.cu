// Prefill attention with mma.sync (bf16 in, fp32 accumulate), flash-attention-2 style:
// a block of 4 warps takes a tile of 64 query rows (16 per warp) of one sequence; for
// each tile of 64 keys, S = Q K^T and the online softmax stay in registers, P is fed
// back to the tensor cores as the A operand of O += P V without leaving registers.
// K/V tiles go through shared memory (rows padded by 16 bytes: no bank conflicts).
// Block-table entries are bounds-checked (flag; the rows read as zeros), no asserts.
//
// mma.m16n8k16 fragment layout (g = lane / 4, t = lane % 4):
//   A (16x16, row major): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B (16x8, k x n):      b0 (k 2t..2t+1, n g), b1 (k 2t+8..2t+9, n g)
//   C (16x8):             c0 c1 (g, 2t..2t+1), c2 c3 (g+8, 2t..2t+1)
#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
constexpr int kTileK = 64, kBlockTokens = 16;  // 64 query rows per block (4 warps x 16)

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t pack_raw(bf16 lo, bf16 hi) {
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&lo)) |
         (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&hi)) << 16);
}

// grid (n_tiles, n_heads), block 128. smem: K and V tiles (64, HD + 8) bf16.
template <int HD>
__global__ void __launch_bounds__(128) k_attn_prefill_mma(AttnArgs a, const PrefillTile* tiles) {
  constexpr int kLd = HD + 8;
  constexpr int kSteps = HD / 16;  // k-steps of Q K^T
  constexpr int kDimTiles = HD / 8;  // n-tiles of O
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + kTileK * kLd;
  const PrefillTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int kvh = h / (a.n_heads / a.n_kv);
  const int qd = a.n_heads * HD, kd = a.n_kv * HD, ld_qkv = qd + 2 * kd;
  // Q fragments of this warp's 16 rows (rows past the tile: zeros).
  uint32_t qf[kSteps][4];
  const int r0 = warp * 16 + g, r1 = r0 + 8;
  {
    const bf16* q0 = a.qkv + static_cast<int64_t>(tile.tok0 + r0) * ld_qkv + h * HD;
    const bf16* q1 = a.qkv + static_cast<int64_t>(tile.tok0 + r1) * ld_qkv + h * HD;
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks) {
      const int c = ks * 16 + 2 * t;
      qf[ks][0] = r0 < tile.rows ? *reinterpret_cast<const uint32_t*>(q0 + c) : 0u;
      qf[ks][1] = r1 < tile.rows ? *reinterpret_cast<const uint32_t*>(q1 + c) : 0u;
      qf[ks][2] = r0 < tile.rows ? *reinterpret_cast<const uint32_t*>(q0 + c + 8) : 0u;
      qf[ks][3] = r1 < tile.rows ? *reinterpret_cast<const uint32_t*>(q1 + c + 8) : 0u;
    }
  }
  float o[kDimTiles][4];
#pragma unroll
  for (int d = 0; d < kDimTiles; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;  // rows r0, r1 (partial l over this thread's keys)
  const int qpos0 = tile.pos0 + r0, qpos1 = tile.pos0 + r1;
  const int32_t* bt = a.block_table + static_cast<int64_t>(tile.slot) * a.max_blocks;
  const int kmax = tile.pos0 + tile.rows - 1;
  const int klo = a.window > 0 ? max(0, tile.pos0 - a.window + 1) : 0;
  const float sl2 = a.scale * 1.4426950408889634f;
  for (int k0 = klo / kTileK * kTileK; k0 <= kmax; k0 += kTileK) {
    __syncthreads();  // the previous tile's readers are done
    constexpr int kChunks = HD / 8;
    for (int c = threadIdx.x; c < kTileK * kChunks; c += 128) {
      const int r = c / kChunks, cc = c % kChunks, j = k0 + r;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (j <= kmax) {
        const int64_t blk = bt[j / kBlockTokens];
        if (blk >= 0 && blk < a.n_blocks) {
          const int64_t off = ((blk * a.n_kv + kvh) * kBlockTokens + (j % kBlockTokens)) * static_cast<int64_t>(HD) + cc * 8;
          kv = *reinterpret_cast<const uint4*>(a.k_cache + off);
          vv = *reinterpret_cast<const uint4*>(a.v_cache + off);
        } else if (cc == 0) {
          atomicAdd(&a.flags->bad_kv_slot, 1);
        }
      }
      *reinterpret_cast<uint4*>(Ks + r * kLd + cc * 8) = kv;
      *reinterpret_cast<uint4*>(Vs + r * kLd + cc * 8) = vv;
    }
    __syncthreads();
    // S (16 x 64) = Q K^T: 8 n-tiles of 8 keys.
    float s[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
      const bf16* krow = Ks + (nt * 8 + g) * kLd + 2 * t;
#pragma unroll
      for (int ks = 0; ks < kSteps; ++ks) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + ks * 16);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + ks * 16 + 8);
        mma_bf16(s[nt], qf[ks], b0, b1);
      }
    }
    // Mask (causal, window, rows past the tile), scale to log2 units, online softmax.
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = k0 + nt * 8 + 2 * t + (e & 1);
        const bool hi = e >= 2;
        const int qp = hi ? qpos1 : qpos0;
        const bool ok = (hi ? r1 : r0) < tile.rows && j <= qp && (a.window <= 0 || j > qp - a.window);
        s[nt][e] = ok ? s[nt][e] * sl2 : -INFINITY;
        if (hi) mx1 = fmaxf(mx1, s[nt][e]);
        else mx0 = fmaxf(mx0, s[nt][e]);
      }
#pragma unroll
    for (int x = 1; x <= 2; x <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, x));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, x));
    }
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float al0 = mn0 == -INFINITY ? 1.0f : exp2f(m0 - mn0), al1 = mn1 == -INFINITY ? 1.0f : exp2f(m1 - mn1);
    m0 = mn0, m1 = mn1;
    l0 *= al0, l1 *= al1;
#pragma unroll
    for (int d = 0; d < kDimTiles; ++d) o[d][0] *= al0, o[d][1] *= al0, o[d][2] *= al1, o[d][3] *= al1;
    // P (bf16 A fragments, 4 k-steps of 16 keys) straight from the S registers.
    uint32_t pf[4][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      float p[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float mref = e >= 2 ? mn1 : mn0;
        p[e] = s[nt][e] == -INFINITY ? 0.0f : exp2f(s[nt][e] - mref);
      }
      l0 += p[0] + p[1];
      l1 += p[2] + p[3];
      const int kk = nt >> 1, half = nt & 1;
      pf[kk][half * 2 + 0] = pack_bf16(p[0], p[1]);  // (g, keys 2t..) / (g, keys 2t+8..)
      pf[kk][half * 2 + 1] = pack_bf16(p[2], p[3]);  // (g+8, ...)
    }
    // O (16 x HD) += P V: B fragments from V rows (keys) of this tile.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const bf16* v0 = Vs + (kk * 16 + 2 * t) * kLd + g;
#pragma unroll
      for (int d = 0; d < kDimTiles; ++d) {
        const bf16* vp = v0 + d * 8;
        const uint32_t b0 = pack_raw(vp[0], vp[kLd]);
        const uint32_t b1 = pack_raw(vp[8 * kLd], vp[9 * kLd]);
        mma_bf16(o[d], pf[kk], b0, b1);
      }
    }
  }
  // Row sums across the 4 threads of a row, then O / l.
#pragma unroll
  for (int x = 1; x <= 2; x <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, x);
    l1 += __shfl_xor_sync(0xffffffffu, l1, x);
  }
  const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
  bf16* out0 = a.out + static_cast<int64_t>(tile.tok0 + r0) * qd + h * HD + 2 * t;
  bf16* out1 = a.out + static_cast<int64_t>(tile.tok0 + r1) * qd + h * HD + 2 * t;
#pragma unroll
  for (int d = 0; d < kDimTiles; ++d) {
    if (r0 < tile.rows)
      *reinterpret_cast<__nv_bfloat162*>(out0 + d * 8) = __floats2bfloat162_rn(o[d][0] * inv0, o[d][1] * inv0);
    if (r1 < tile.rows)
      *reinterpret_cast<__nv_bfloat162*>(out1 + d * 8) = __floats2bfloat162_rn(o[d][2] * inv1, o[d][3] * inv1);
  }
}

template <int HD>
void launch(const AttnArgs& a, const PrefillTile* tiles, int n_tiles, cudaStream_t s) {
  constexpr size_t bytes = 2 * kTileK * (HD + 8) * sizeof(bf16);
  k_attn_prefill_mma<HD><<<dim3(n_tiles, a.n_heads), 128, bytes, s>>>(a, tiles);
}
}  // namespace

bool attention_prefill_mma(const AttnArgs& a, const PrefillTile* tiles, int n_tiles, cudaStream_t s) {
  if (a.hd == 64) launch<64>(a, tiles, n_tiles, s);
  else if (a.hd == 128) launch<128>(a, tiles, n_tiles, s);
  else return false;
  return true;
}

}  // namespace ballast::cuda
