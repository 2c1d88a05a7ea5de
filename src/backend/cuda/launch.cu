// Launch checking for --debug-sync: synchronize after every kernel and name it.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/kernels.h"

namespace ballast::cuda {

namespace {
bool g_debug_sync = false;
thread_local char g_msg[512];
}  // namespace

void set_debug_sync(bool on) { g_debug_sync = on; }
bool debug_sync() {
  static const bool env = [] {
    const char* e = std::getenv("CUDA_LAUNCH_BLOCKING");
    return e && std::strcmp(e, "1") == 0;
  }();
  return g_debug_sync || env;
}

const char* check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && debug_sync()) e = cudaDeviceSynchronize();
  if (e == cudaSuccess) return "";
  std::snprintf(g_msg, sizeof g_msg, "kernel %s: %s (%s)", kernel, cudaGetErrorString(e), cudaGetErrorName(e));
  return g_msg;
}

}  // namespace ballast::cuda
