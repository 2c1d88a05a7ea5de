// Bounds-checked embedding gather: an id outside [0, rows) never reads memory; its row
// becomes zeros and a flag is raised (the host rejects such ids before; this is the
// second line of defence, never a device-side assert).
#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
// grid: n tokens; block: 256 threads over H.
__global__ void k_embed(const bf16* emb, int64_t rows, int H, const int32_t* ids, float scale, float* x,
                        ErrorFlags* flags) {
  allow_dependents();
  const int t = blockIdx.x;
  const int32_t id = ids[t];
  float* out = x + static_cast<int64_t>(t) * H;
  if (id < 0 || id >= rows) {
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[i] = 0.0f;
    if (threadIdx.x == 0) atomicAdd(&flags->bad_token, 1);
    return;
  }
  const bf16* row = emb + static_cast<int64_t>(id) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[i] = __bfloat162float(row[i]) * scale;
}

__global__ void k_gather(const bf16* x, int H, const int32_t* idx, bf16* out) {
  const int r = blockIdx.x;
  const bf16* src = x + static_cast<int64_t>(idx[r]) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[static_cast<int64_t>(r) * H + i] = src[i];
}
}  // namespace

void embed(const bf16* emb, int64_t rows, int H, const int32_t* ids, int n, float scale, float* x,
           ErrorFlags* flags, cudaStream_t s) {
  k_embed<<<n, 256, 0, s>>>(emb, rows, H, ids, scale, x, flags);
}

void gather_rows(const bf16* x, int H, const int32_t* idx, int m, bf16* out, cudaStream_t s) {
  k_gather<<<m, 256, 0, s>>>(x, H, idx, out);
}

}  // namespace ballast::cuda
