// The CUDA backend's entry points beyond backend.h's create_cuda_backend. Declared in
// every build; without CUDA, cuda_available() names why.
#pragma once
#include "core/status.h"

namespace ballast::cuda {

// OK when this build has the CUDA backend and a CUDA device is usable; else kUnsupported
// "--device cuda: this build has no CUDA backend (built without nvcc)" or
// "--device cuda: no usable CUDA device (<reason>)".
Status cuda_available();

}  // namespace ballast::cuda
