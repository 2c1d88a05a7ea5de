// Pass/fail counting shared by the GPU test files (one binary, `main` in model_gpu.cu):
// GPU_CHECK(cond, printf-args) counts a pass or prints a FAIL line with file:line.
#pragma once
#include <cstdio>

namespace ballast::gpu_test {
struct Counts {
  int pass = 0, fail = 0;
};
inline Counts& counts() {
  static Counts c;
  return c;
}
}  // namespace ballast::gpu_test

#define GPU_CHECK(cond, ...)                             \
  do {                                                   \
    if (cond) {                                          \
      ++ballast::gpu_test::counts().pass;                \
    } else {                                             \
      ++ballast::gpu_test::counts().fail;                \
      std::printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
      std::printf(__VA_ARGS__);                          \
      std::printf("\n");                                 \
    }                                                    \
  } while (0)
