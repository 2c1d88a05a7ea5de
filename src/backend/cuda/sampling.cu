// On-GPU greedy selection with log-probability and non-finite detection per row: only
// ids and log-probs cross the bus. A row with a NaN/Inf valid logit yields id -1 (the
// host ends that request with numerical_error; the other rows continue).
#include <cfloat>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
// grid: m rows; block 1024.
__global__ void k_greedy(const float* logits, int V, const uint8_t* valid, int32_t* ids, float* logprobs) {
  __shared__ float sv[32];
  __shared__ int si[32];
  __shared__ int sbad;
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * V;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) sbad = 0;
  __syncthreads();
  float best = -FLT_MAX;
  int bi = INT_MAX;
  int bad = 0;
  for (int i = tid; i < V; i += blockDim.x) {
    if (valid && !valid[i]) continue;
    const float v = row[i];
    if (!isfinite(v)) {
      bad = 1;
      continue;
    }
    if (v > best || (v == best && i < bi)) best = v, bi = i;
  }
  if (bad) atomicOr(&sbad, 1);
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
  }
  if (lane == 0) sv[warp] = best, si[warp] = bi;
  __syncthreads();
  if (warp == 0) {
    best = lane < (blockDim.x >> 5) ? sv[lane] : -FLT_MAX;
    bi = lane < (blockDim.x >> 5) ? si[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
    }
    if (lane == 0) sv[0] = best, si[0] = bi;
  }
  __syncthreads();
  const float mx = sv[0];
  const int id = si[0];
  float sum = 0.0f;
  for (int i = tid; i < V; i += blockDim.x) {
    if (valid && !valid[i]) continue;
    const float v = row[i];
    if (isfinite(v)) sum += __expf(v - mx);
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  __syncthreads();
  if (lane == 0) sv[warp] = sum;
  __syncthreads();
  if (tid == 0) {
    float s = 0.0f;
    for (int w = 0; w < (blockDim.x >> 5); ++w) s += sv[w];
    const bool fail = sbad != 0 || id == INT_MAX;
    ids[blockIdx.x] = fail ? -1 : id;
    logprobs[blockIdx.x] = fail ? 0.0f : -logf(s);
  }
}

__global__ void k_count_nonfinite(const float* logits, int V, int32_t* bad) {
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * V;
  int c = 0;
  for (int i = threadIdx.x; i < V; i += blockDim.x) c += !isfinite(row[i]);
  for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
  __shared__ int s;
  if (threadIdx.x == 0) s = 0;
  __syncthreads();
  if ((threadIdx.x & 31) == 0) atomicAdd(&s, c);
  __syncthreads();
  if (threadIdx.x == 0) bad[blockIdx.x] = s;
}
}  // namespace

void greedy_rows(const float* logits, int m, int V, const uint8_t* valid, int32_t* ids, float* logprobs,
                 cudaStream_t s) {
  k_greedy<<<m, 1024, 0, s>>>(logits, V, valid, ids, logprobs);
}

void count_nonfinite(const float* logits, int m, int V, int32_t* bad, cudaStream_t s) {
  k_count_nonfinite<<<m, 256, 0, s>>>(logits, V, bad);
}

}  // namespace ballast::cuda
