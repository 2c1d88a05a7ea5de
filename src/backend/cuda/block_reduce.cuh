// Block-wide reductions shared by the row kernels (one block per row, blockDim a multiple
// of 32, at most 1024 threads).
#pragma once
#include <cuda_runtime.h>

namespace ballast::cuda {

// Sum of v over the block; every thread gets the total. red: __shared__ float[32].
__device__ __forceinline__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = lane < nw ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace ballast::cuda
