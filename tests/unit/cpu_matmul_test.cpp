// matmul for every dtype vs dequantize_row + naive double-precision matmul.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/matmul.h"
#include "core/quant.h"
#include "cpu_test_util.h"

namespace ballast::cpu {
namespace {

using testing::kAllDTypes;
using testing::random_floats;
using testing::random_weight;

// Reference y: (n, rows) from the dequantized weight (dequantize_row is checked
// bit-exact against gguf-py in test_quant_reference.py).
std::vector<double> reference(const WeightView& w, const std::vector<float>& x, int64_t n) {
  std::vector<float> row(w.cols);
  std::vector<double> y(n * w.rows);
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.dtype, w.row(r), row.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t c = 0; c < w.cols; ++c) s += static_cast<double>(row[c]) * x[t * w.cols + c];
      y[t * w.rows + r] = s;
    }
  }
  return y;
}

// Relative RMS error allowed: Q8 activation rounding costs ~0.3% per dot.
double tolerance(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: return 1e-5;
    default: return 1.5e-2;
  }
}

void check(DType t, int64_t rows, int64_t cols, int64_t n, int threads) {
  SCOPED_TRACE(std::string(dtype_name(t)) + " rows=" + std::to_string(rows) + " cols=" +
               std::to_string(cols) + " n=" + std::to_string(n) + " threads=" + std::to_string(threads));
  auto data = random_weight(t, rows, cols, 7 + static_cast<uint32_t>(t));
  WeightView w{t, rows, cols, data.data()};
  auto x = random_floats(n * cols, 11);
  auto ref = reference(w, x, n);
  std::vector<float> y(n * rows, NAN);
  if (threads == 0) {
    matmul_serial(w, x.data(), n, y.data());
  } else {
    ThreadPool pool(threads);
    matmul(w, x.data(), n, y.data(), pool);
  }
  double err2 = 0, ref2 = 0, max_rel = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_TRUE(std::isfinite(y[i])) << "index " << i;
    err2 += (y[i] - ref[i]) * (y[i] - ref[i]);
    ref2 += ref[i] * ref[i];
  }
  const double rms_ref = std::sqrt(ref2 / y.size());
  for (size_t i = 0; i < y.size(); ++i) max_rel = std::max(max_rel, std::abs(y[i] - ref[i]) / rms_ref);
  if (std::getenv("CPU_TEST_VERBOSE")) std::fprintf(stderr, "%s n=%ld rel_rms=%.2e max=%.2e\n", dtype_name(t), (long)n, std::sqrt(err2 / ref2), max_rel);
  EXPECT_LT(std::sqrt(err2 / ref2), tolerance(t));
  EXPECT_LT(max_rel, 10 * tolerance(t));
}

class MatmulAllTypes : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulAllTypes, DecodeSingleToken) { check(GetParam(), 37, 512, 1, 2); }
TEST_P(MatmulAllTypes, FewTokens) { check(GetParam(), 45, 768, 5, 2); }
TEST_P(MatmulAllTypes, Serial) { check(GetParam(), 19, 256, 3, 0); }
TEST_P(MatmulAllTypes, MidBatch) { check(GetParam(), 70, 512, 17, 2); }
TEST_P(MatmulAllTypes, PrefillBatch) { check(GetParam(), 70, 512, 40, 2); }
TEST_P(MatmulAllTypes, LargePrefillBatch) { check(GetParam(), 130, 1024, 129, 2); }

// Every token-group size of the integer kernels (1..4 and remainders), on both the
// AVX2 and (where the CPU has it) the AVX-VNNI kernels, with the sgemm path off.
TEST_P(MatmulAllTypes, IntegerKernelsAllGroupSizes) {
  set_matmul_gemm_min_tokens(1000);
  for (bool avx2_only : {true, false}) {
    set_dot_kernels_avx2_only(avx2_only);
    for (int64_t n : {1, 2, 3, 4, 6, 9}) check(GetParam(), 21, 512, n, 2);
  }
  set_dot_kernels_avx2_only(false);
  set_matmul_gemm_min_tokens(0);
}

INSTANTIATE_TEST_SUITE_P(Cpu, MatmulAllTypes, ::testing::ValuesIn(kAllDTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(CpuMatmul, OddFloatColumns) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) check(t, 9, 37, 2, 2);
}

TEST(CpuMatmul, ZeroActivationGivesZero) {
  for (DType t : kAllDTypes) {
    auto data = random_weight(t, 8, 256, 3);
    WeightView w{t, 8, 256, data.data()};
    std::vector<float> x(256, 0.f), y(8, NAN);
    matmul_serial(w, x.data(), 1, y.data());
    for (float v : y) EXPECT_EQ(v, 0.f) << dtype_name(t);
  }
}

TEST(CpuEmbedding, RowMatchesDequantizeAndRejectsOutOfRange) {
  for (DType t : kAllDTypes) {
    auto data = random_weight(t, 5, 256, 5);
    WeightView w{t, 5, 256, data.data()};
    std::vector<float> a(256), b(256);
    ASSERT_TRUE(embedding_row(w, 4, a.data()));
    dequantize_row(t, w.row(4), b.data(), 256);
    EXPECT_EQ(a, b) << dtype_name(t);
    std::vector<float> untouched(256, 42.f);
    EXPECT_FALSE(embedding_row(w, 5, untouched.data()));
    EXPECT_FALSE(embedding_row(w, -1, untouched.data()));
    EXPECT_EQ(untouched[0], 42.f);
    WeightView null_data{t, 5, 256, nullptr};  // out of range must not read
    EXPECT_FALSE(embedding_row(null_data, 1000000, untouched.data()));
  }
}

}  // namespace
}  // namespace ballast::cpu
