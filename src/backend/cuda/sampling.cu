// On-GPU greedy selection with log-probability and non-finite detection per row: only
// ids and log-probs cross the bus. A row with a NaN/Inf valid logit yields id -1 (the
// host ends that request with numerical_error; the other rows continue).
#include <algorithm>
#include <cfloat>
#include <climits>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
// Greedy in two kernels so one long row still spreads over many SMs: partial results per
// chunk of a row, then one warp per row merges them.
struct GreedyPart {
  float mx;   // chunk max over valid finite logits (-FLT_MAX: none)
  int idx;    // its lowest index (INT_MAX: none)
  float sum;  // sum of exp(v - mx) over the chunk's valid finite logits
  int bad;    // a valid logit was NaN/Inf
};
constexpr int kGreedyChunks = 32;

__device__ __forceinline__ void better(float& bv, int& bi, float v, int i) {
  if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
}

// grid (m, chunks), block 256.
__global__ void k_greedy_part(const float* logits, int V, const uint8_t* valid, int chunks, GreedyPart* part) {
  __shared__ float sv[8], ss[8];
  __shared__ int si[8], sb[8];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * V;
  const int per = (V + chunks - 1) / chunks;
  const int lo = blockIdx.y * per, hi = min(V, lo + per);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  float best = -FLT_MAX, sum = 0.0f;
  int bi = INT_MAX, bad = 0;
  for (int i = lo + tid; i < hi; i += blockDim.x) {
    if (valid && !valid[i]) continue;
    const float v = row[i];
    if (!isfinite(v)) {
      bad = 1;
      continue;
    }
    if (v > best) {  // online sum of exp relative to the running max
      sum = sum * __expf(best - v) + 1.0f;
      best = v;
      bi = i;
    } else {
      sum += __expf(v - best);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o), os = __shfl_xor_sync(0xffffffffu, sum, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    const float nm = fmaxf(best, ov);
    sum = (best == -FLT_MAX ? 0.0f : sum * __expf(best - nm)) + (ov == -FLT_MAX ? 0.0f : os * __expf(ov - nm));
    better(best, bi, ov, oi);
    bad |= __shfl_xor_sync(0xffffffffu, bad, o);
  }
  if (lane == 0) sv[warp] = best, si[warp] = bi, ss[warp] = sum, sb[warp] = bad;
  __syncthreads();
  if (tid == 0) {
    float b = -FLT_MAX, s = 0.0f;
    int i = INT_MAX, x = 0;
    for (int w = 0; w < (blockDim.x >> 5); ++w) {
      const float nm = fmaxf(b, sv[w]);
      s = (b == -FLT_MAX ? 0.0f : s * __expf(b - nm)) + (sv[w] == -FLT_MAX ? 0.0f : ss[w] * __expf(sv[w] - nm));
      better(b, i, sv[w], si[w]);
      x |= sb[w];
    }
    part[blockIdx.x * chunks + blockIdx.y] = {b, i, s, x};
  }
}

// grid m, block 32.
__global__ void k_greedy_final(const GreedyPart* part, int chunks, int32_t* ids, float* logprobs) {
  const int lane = threadIdx.x;
  GreedyPart p{-FLT_MAX, INT_MAX, 0.0f, 0};
  if (lane < chunks) p = part[blockIdx.x * chunks + lane];
  float best = p.mx, sum = p.sum;
  int bi = p.idx, bad = p.bad;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o), os = __shfl_xor_sync(0xffffffffu, sum, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    const float nm = fmaxf(best, ov);
    sum = (best == -FLT_MAX ? 0.0f : sum * __expf(best - nm)) + (ov == -FLT_MAX ? 0.0f : os * __expf(ov - nm));
    better(best, bi, ov, oi);
    bad |= __shfl_xor_sync(0xffffffffu, bad, o);
  }
  if (lane == 0) {
    const bool fail = bad != 0 || bi == INT_MAX;
    ids[blockIdx.x] = fail ? -1 : bi;
    logprobs[blockIdx.x] = fail ? 0.0f : -logf(sum);
  }
}

}  // namespace

size_t greedy_scratch_bytes(int m) { return static_cast<size_t>(m) * kGreedyChunks * sizeof(GreedyPart); }

void greedy_rows(const float* logits, int m, int V, const uint8_t* valid, int32_t* ids, float* logprobs, void* scratch,
                 cudaStream_t s) {
  const int chunks = std::max(1, std::min(kGreedyChunks, (V + 2047) / 2048));
  auto* part = static_cast<GreedyPart*>(scratch);
  k_greedy_part<<<dim3(m, chunks), 256, 0, s>>>(logits, V, valid, chunks, part);
  k_greedy_final<<<m, 32, 0, s>>>(part, chunks, ids, logprobs);
}

}  // namespace ballast::cuda
