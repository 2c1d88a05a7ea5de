// Launch checking for --debug-sync: synchronize after every kernel and name it.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

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

namespace {
// BALLAST_CUDA_PROFILE=1: events around every launch, summed per kernel name, printed to
// stderr at exit (GPU time per kernel; CUDA graphs are off while profiling).
struct Profiler {
  struct Pending {
    const char* name;
    cudaEvent_t a, b;
  };
  std::vector<cudaEvent_t> pool;
  std::vector<Pending> pending;
  std::map<std::string, std::pair<double, long>> totals;  // name -> (ms, launches)
  cudaEvent_t cur = nullptr;
  cudaEvent_t get() {
    if (pool.empty()) {
      cudaEvent_t e;
      cudaEventCreate(&e);
      return e;
    }
    cudaEvent_t e = pool.back();
    pool.pop_back();
    return e;
  }
  ~Profiler() {
    if (totals.empty()) return;
    std::vector<std::pair<std::string, std::pair<double, long>>> v(totals.begin(), totals.end());
    std::sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.second.first > y.second.first; });
    double all = 0;
    for (auto& e : v) all += e.second.first;
    std::fprintf(stderr, "CUDA profile (GPU time per kernel, summed):\n%-22s %10s %8s %10s %6s\n", "kernel", "ms", "calls",
                 "us/call", "%");
    for (auto& [n, t] : v)
      std::fprintf(stderr, "%-22s %10.3f %8ld %10.2f %6.1f\n", n.c_str(), t.first, t.second, 1000.0 * t.first / t.second,
                   100.0 * t.first / all);
  }
};
Profiler& prof() {
  static Profiler p;
  return p;
}
}  // namespace

bool env_on(const char* name) {
  const char* e = std::getenv(name);
  return e && *e && std::strcmp(e, "0") != 0;
}

bool profiling() {
  static const bool on = env_on("BALLAST_CUDA_PROFILE");
  return on;
}

void prof_begin(cudaStream_t s) {
  auto& p = prof();
  p.cur = p.get();
  cudaEventRecord(p.cur, s);
}

void prof_end(const char* name, cudaStream_t s) {
  auto& p = prof();
  cudaEvent_t b = p.get();
  cudaEventRecord(b, s);
  p.pending.push_back({name, p.cur, b});
}

void prof_collect() {
  auto& p = prof();
  for (auto& e : p.pending) {
    float ms = 0;
    if (cudaEventSynchronize(e.b) == cudaSuccess && cudaEventElapsedTime(&ms, e.a, e.b) == cudaSuccess) {
      auto& t = p.totals[e.name];
      t.first += ms;
      t.second += 1;
    }
    p.pool.push_back(e.a);
    p.pool.push_back(e.b);
  }
  p.pending.clear();
}

}  // namespace ballast::cuda
