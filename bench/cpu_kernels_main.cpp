// Standalone driver for the CPU kernel tools, for machines where the full ballast
// binary is not built (not part of the CMake build):
//   g++ -O3 -mavx2 -mfma -mf16c -std=gnu++20 -Isrc -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//       bench/cpu_kernels_main.cpp src/core/thread_pool.cpp src/core/dtype.cpp src/backend/cpu/*.cpp \
//       -lopenblas -lpthread -o cpu_kernels
//   ./cpu_kernels bench-kernels [options] | quant-dequant TYPE IN OUT | pool [threads]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/thread_pool.h"

namespace ballast::cpu {
int cpu_quant_selftest_main(int argc, char** argv);
int cpu_bench_main(int argc, char** argv);
}  // namespace ballast::cpu

// Cost of one parallel_for of trivial work (the per-kernel overhead decode pays).
static int pool_main(int argc, char** argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : ballast::ThreadPool::default_threads();
  for (int th = 1; th <= max_threads; th *= 2) {
    ballast::ThreadPool pool(th);
    std::atomic<long> sink{0};
    const int iters = 100000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) {
      pool.parallel_for(64, [&](int64_t b, int64_t e) { sink.fetch_add(e - b, std::memory_order_relaxed); });
    }
    auto t1 = std::chrono::steady_clock::now();
    std::printf("threads=%d  %.2f us per parallel_for\n", th,
                std::chrono::duration<double, std::micro>(t1 - t0).count() / iters);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "bench-kernels")) return ballast::cpu::cpu_bench_main(argc - 1, argv + 1);
  if (argc > 1 && !std::strcmp(argv[1], "quant-dequant")) return ballast::cpu::cpu_quant_selftest_main(argc - 1, argv + 1);
  if (argc > 1 && !std::strcmp(argv[1], "pool")) return pool_main(argc - 1, argv + 1);
  std::fprintf(stderr, "usage: %s bench-kernels [opts] | quant-dequant TYPE IN OUT | pool [max_threads]\n", argv[0]);
  return 2;
}
