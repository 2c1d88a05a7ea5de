// cuBLAS is loaded with dlopen when a CUDA backend is created (backend/cuda/cublas_api.h);
// the library must be found without a GPU (the loader's paths or the build's toolkit).
#include <gtest/gtest.h>

#include <string>

#if BALLAST_HAVE_CUDA
#include "backend/cuda/cublas_api.h"

TEST(CudaBlas, LibraryLoadsWithoutAGpu) {
  std::string err;
  EXPECT_TRUE(ballast::cuda::cublas_load(&err)) << err;
  EXPECT_TRUE(ballast::cuda::cublas_load());  // loaded once, then cached
}
#endif
