// Gated MLP activations: SwiGLU (silu(gate) * up) and GeGLU (gelu_tanh(gate) * up).
#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
__global__ void k_glu(const bf16* gu, int ffn, bool gelu, bf16* out) {
  const int t = blockIdx.y;
  const bf16* g = gu + static_cast<int64_t>(t) * 2 * ffn;
  const bf16* u = g + ffn;
  bf16* o = out + static_cast<int64_t>(t) * ffn;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < ffn; i += gridDim.x * blockDim.x) {
    float a = __bfloat162float(g[i]), b = __bfloat162float(u[i]);
    float act;
    if (gelu) {
      const float k0 = 0.7978845608028654f, k1 = 0.044715f;
      act = 0.5f * a * (1.0f + tanhf(k0 * (a + k1 * a * a * a)));
    } else {
      act = a / (1.0f + __expf(-a));
    }
    o[i] = __float2bfloat16(act * b);
  }
}
}  // namespace

void swiglu(const bf16* gu, int n, int ffn, bool gelu_tanh, bf16* out, cudaStream_t s) {
  dim3 grid((ffn + 1023) / 1024, n);
  k_glu<<<grid, 256, 0, s>>>(gu, ffn, gelu_tanh, out);
}

}  // namespace ballast::cuda
