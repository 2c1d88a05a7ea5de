// The CUDA model: the Llama family forward on the GPU (bf16 weights, paged KV cache in
// device memory, on-GPU greedy). Declared always; defined only when BALLAST_HAVE_CUDA.
#pragma once
#include <cstdint>
#include <memory>

#include "core/status.h"
#include "model/model.h"

namespace ballast::cuda {

struct CudaModelOptions {
  bool debug_sync = false;      // synchronize + check after every kernel, naming it
  int64_t kv_blocks = 0;        // 0: most of the free device memory after the weights
  double kv_memory_fraction = 0.85;
};

// True when a CUDA device is usable (no CUDA build: false with the reason).
Status cuda_available();

// Uploads a loaded model's weights (bf16 as is; f32/f16/GGUF-quantized converted to bf16).
// `ws` must outlive the model (held by the returned model).
Result<std::unique_ptr<model::Model>> create_cuda_model(const model::ModelConfig& cfg,
                                                        std::shared_ptr<const model::WeightSet> ws,
                                                        const CudaModelOptions& opts);
// Random bf16 weights (uniform, std 0.02; norms 1) generated on the device.
Result<std::unique_ptr<model::Model>> create_random_cuda_model(const model::ModelConfig& cfg, int64_t rows,
                                                               uint64_t seed, const CudaModelOptions& opts);

}  // namespace ballast::cuda
