// Hidden subcommand `ballast bench-kernels`: decode matvec throughput (GB/s of weight
// bytes streamed) per dtype and shape, with 1 and N threads.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/packed.h"
#include "core/quant.h"
#include "core/thread_pool.h"

namespace ballast::cpu {
namespace {

// Byte offsets of f16 scale fields inside one block, so random blocks stay finite.
std::vector<int> f16_fields(DType t) {
  switch (t) {
    case DType::kQ4_0: case DType::kQ5_0: case DType::kQ8_0: return {0};
    case DType::kQ4_1: case DType::kQ5_1: case DType::kQ4_K: case DType::kQ5_K: return {0, 2};
    case DType::kQ2_K: return {80, 82};
    case DType::kQ3_K: return {108};
    case DType::kQ6_K: return {208};
    default: return {};
  }
}

void fill_random(DType t, uint8_t* data, size_t bytes, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  if (t == DType::kF32) {
    for (size_t i = 0; i < bytes / 4; ++i) { float v = u(rng); std::memcpy(data + 4 * i, &v, 4); }
    return;
  }
  if (t == DType::kF16 || t == DType::kBF16) {
    for (size_t i = 0; i < bytes / 2; ++i) {
      uint16_t h = t == DType::kF16 ? fp32_to_fp16(u(rng)) : fp32_to_bf16(u(rng));
      std::memcpy(data + 2 * i, &h, 2);
    }
    return;
  }
  for (size_t i = 0; i < bytes; i += 4) {
    uint32_t r = rng();
    std::memcpy(data + i, &r, std::min<size_t>(4, bytes - i));
  }
  const auto& info = dtype_info(t);
  const auto fields = f16_fields(t);
  for (size_t b = 0; b < bytes / info.block_bytes; ++b) {
    for (int off : fields) {
      uint16_t h = fp32_to_fp16(u(rng) * 0.1f);
      std::memcpy(data + b * info.block_bytes + off, &h, 2);
    }
  }
}

// Per-call times (seconds) over at least min_seconds; the machine may be shared, so
// callers report the best and the median.
bool g_use_packed = false;

std::vector<double> bench_one(const WeightView& w, const std::vector<float>& x, std::vector<float>& y,
                              int64_t n, ThreadPool& pool, double min_seconds) {
  PackedWeight pw;
  const bool packed = g_use_packed && packed_supported() && pack_weight({w}, pw, &pool);
  auto matmul = [&](const WeightView& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
    if (packed) packed_matmul(pw, x, n, y, w.rows, &pool);
    else cpu::matmul(w, x, n, y, pool);
  };
  matmul(w, x.data(), n, y.data(), pool);  // warm-up
  std::vector<double> times;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    auto t0 = std::chrono::steady_clock::now();
    matmul(w, x.data(), n, y.data(), pool);
    auto t1 = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double>(t1 - t0).count());
    elapsed = std::chrono::duration<double>(t1 - start).count();
  } while (elapsed < min_seconds || times.size() < 3);
  std::sort(times.begin(), times.end());
  return times;
}

bool parse_type(const std::string& s, DType* t) {
  for (uint32_t g : {0u, 1u, 30u, 2u, 3u, 6u, 7u, 8u, 10u, 11u, 12u, 13u, 14u}) {
    DType d = static_cast<DType>(g);
    if (s == dtype_name(d)) { *t = d; return true; }
  }
  return false;
}

}  // namespace

// Options: --types Q4_1,Q8_0,...  --threads 1,2  --n TOKENS (default 1)  --seconds S
//          --gemm-min N (tokens from which the sgemm path is used)  --avx2-only 1
//          --packed 1 (AVX-512 VNNI panels, as the CPU backend uses by default)
//          --shapes 576x1536,2048x2048,262144x640
int cpu_bench_main(int argc, char** argv) {
  std::vector<DType> types = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                              DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                              DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  std::vector<std::pair<int64_t, int64_t>> shapes = {{576, 1536}, {2048, 2048}, {262144, 640}};
  std::vector<int> threads = {1, ThreadPool::default_threads() > 1 ? ThreadPool::default_threads() : 2};
  int64_t n_tok = 1;
  double seconds = 0.3;
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    size_t b = 0;
    for (size_t e; (e = s.find(',', b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
    out.push_back(s.substr(b));
    return out;
  };
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--types") {
      types.clear();
      for (auto& s : split(v)) {
        DType t;
        if (!parse_type(s, &t)) { std::fprintf(stderr, "bench-kernels: unknown type %s\n", s.c_str()); return 2; }
        types.push_back(t);
      }
    } else if (k == "--threads") {
      threads.clear();
      for (auto& s : split(v)) threads.push_back(std::stoi(s));
    } else if (k == "--shapes") {
      shapes.clear();
      for (auto& s : split(v)) {
        auto x = s.find('x');
        shapes.push_back({std::stoll(s.substr(0, x)), std::stoll(s.substr(x + 1))});
      }
    } else if (k == "--n") {
      n_tok = std::stoll(v);
    } else if (k == "--gemm-min") {
      set_matmul_gemm_min_tokens(std::stoll(v));
    } else if (k == "--packed") {
      g_use_packed = v == "1";
    } else if (k == "--avx2-only") {
      set_dot_kernels_avx2_only(v == "1");
    } else if (k == "--seconds") {
      seconds = std::stod(v);
    } else {
      std::fprintf(stderr, "bench-kernels: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  std::mt19937 rng(42);
  std::printf("%-6s %-13s %3s %4s %9s %9s %9s %8s %8s\n", "dtype", "shape", "thr", "n", "MiB", "best_ms",
              "med_ms", "GB/s", "med_GB/s");
  for (auto [rows, cols] : shapes) {
    std::vector<float> x(n_tok * cols), y(n_tok * rows);
    for (auto& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    for (DType t : types) {
      WeightView w{t, rows, cols, nullptr};
      const size_t bytes = w.row_bytes() * rows;
      std::vector<uint8_t> data(bytes);
      fill_random(t, data.data(), bytes, rng);
      w.data = data.data();
      for (int th : threads) {
        ThreadPool pool(th);
        auto times = bench_one(w, x, y, n_tok, pool, seconds);
        const double best = times.front(), med = times[times.size() / 2];
        std::printf("%-6s %6ldx%-6ld %3d %4ld %9.1f %9.3f %9.3f %8.2f %8.2f\n", dtype_name(t), (long)rows,
                    (long)cols, th, (long)n_tok, bytes / 1048576.0, best * 1e3, med * 1e3, bytes / best / 1e9,
                    bytes / med / 1e9);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace ballast::cpu
