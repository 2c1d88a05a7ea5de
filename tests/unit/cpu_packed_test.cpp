// Packed-panel kernels, every ISA path this CPU can run (AVX2 always, AVX-512 VNNI where
// present), vs the dequantize-and-fp64 reference and vs the row kernels (same 8-bit
// activations, so they agree up to float summation order).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "backend/cpu/matmul.h"
#include "backend/cpu/packed.h"
#include "core/quant.h"
#include "cpu_test_util.h"

namespace ballast::cpu {
namespace {

using testing::kAllDTypes;
using testing::random_floats;
using testing::random_weight;

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

// Parts: the weight split in two stacked parts (as fused q|k|v are), rows not a
// multiple of the panel height.
void check(DType t, int64_t rows, int64_t cols, int64_t n, int threads) {
  SCOPED_TRACE(std::string(dtype_name(t)) + " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
               " n=" + std::to_string(n) + " threads=" + std::to_string(threads));
  auto data = random_weight(t, rows, cols, 17 + static_cast<uint32_t>(t));
  WeightView w{t, rows, cols, data.data()};
  const int64_t split = rows / 3;
  std::vector<WeightView> parts = {{t, split, cols, data.data()}, {t, rows - split, cols, w.row(split)}};
  PackedWeight pw;
  ASSERT_TRUE(pack_weight(parts, pw, nullptr));
  auto x = random_floats(n * cols, 23);
  const int64_t ldy = rows + 3;  // y rows wider than the matrix: columns past rows untouched
  std::vector<float> y(n * ldy, 42.f);
  ThreadPool pool(threads > 0 ? threads : 1);
  packed_matmul(pw, x.data(), n, y.data(), ldy, threads > 0 ? &pool : nullptr);

  // Row kernels on the same activations (the sgemm path off).
  set_matmul_gemm_min_tokens(1 << 20);
  std::vector<float> y_rows(n * rows);
  matmul_serial(w, x.data(), n, y_rows.data());
  set_matmul_gemm_min_tokens(0);

  auto ref = reference(w, x, n);
  double err2 = 0, ref2 = 0, rows_err = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      const double v = y[i * ldy + r], e = ref[i * rows + r];
      ASSERT_TRUE(std::isfinite(v)) << "token " << i << " row " << r;
      err2 += (v - e) * (v - e);
      ref2 += e * e;
      rows_err = std::max(rows_err, std::abs(v - y_rows[i * rows + r]));
    }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(y[i * ldy + r], 42.f) << "wrote past rows";
  const double rms_ref = std::sqrt(ref2 / (n * rows));
  EXPECT_LT(std::sqrt(err2 / ref2), 1.5e-2);
  EXPECT_LT(rows_err / rms_ref, 1e-4) << "packed and row kernels disagree beyond rounding";
}

constexpr PanelIsa kIsas[] = {PanelIsa::kAvx2, PanelIsa::kAvx512};

// Caps the panel ISA for one scope.
struct IsaScope {
  explicit IsaScope(PanelIsa isa) { set_packed_isa_limit(isa); }
  ~IsaScope() { set_packed_isa_limit(PanelIsa::kAvx512); }
};

TEST(CpuPacked, Avx2PanelsRunOnEveryBuildTarget) {
  // AVX2 is the build's baseline: the panels must be available unless forced off.
  if (std::getenv("BALLAST_CPU_KERNELS") && std::string(std::getenv("BALLAST_CPU_KERNELS")) == "rows")
    GTEST_SKIP() << "BALLAST_CPU_KERNELS=rows";
  IsaScope scope(PanelIsa::kAvx2);
  EXPECT_EQ(packed_isa(), PanelIsa::kAvx2);
}

class PackedAllTypes : public ::testing::TestWithParam<DType> {};

TEST_P(PackedAllTypes, MatchesReference) {
  const DType t = GetParam();
  if (!packable(t)) {
    PackedWeight pw;
    auto data = random_weight(t, 16, 256, 1);
    // No panel format (the row kernels serve it): packing must refuse it.
    EXPECT_FALSE(pack_weight({{t, 16, 256, data.data()}}, pw, nullptr)) << dtype_name(t);
    return;
  }
  int ran = 0;
  for (PanelIsa isa : kIsas) {
    IsaScope scope(isa);
    if (packed_isa() != isa) continue;  // this CPU lacks it (AVX2 is the build's baseline)
    SCOPED_TRACE(panel_isa_name(isa));
    ++ran;
    for (int64_t n : {1, 2, 3, 4, 5, 9}) check(t, 37, 512, n, 0);
    check(t, 48, 768, 1, 2);
    check(t, 70, 512, 70, 2);    // token tiles of 64 + remainder, threaded
    check(t, 33, 1024, 131, 2);
  }
  EXPECT_GE(ran, 1) << "no panel ISA ran";
}

INSTANTIATE_TEST_SUITE_P(Cpu, PackedAllTypes, ::testing::ValuesIn(kAllDTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(CpuPacked, ZeroActivationGivesZero) {
  for (PanelIsa isa : kIsas) {
  IsaScope scope(isa);
  if (packed_isa() != isa) continue;
  for (DType t : kAllDTypes) {
    if (!packable(t)) continue;
    auto data = random_weight(t, 16, 256, 3);
    PackedWeight pw;
    ASSERT_TRUE(pack_weight({{t, 16, 256, data.data()}}, pw, nullptr));
    std::vector<float> x(256, 0.f), y(16, NAN);
    packed_matmul(pw, x.data(), 1, y.data(), 16, nullptr);
    for (float v : y) EXPECT_EQ(v, 0.f) << dtype_name(t) << " " << panel_isa_name(isa);
  }
  }
}

TEST(CpuPacked, MixedDTypesOrUnalignedColumnsAreNotPacked) {
  auto a = random_weight(DType::kQ4_1, 16, 256, 1), b = random_weight(DType::kQ8_0, 16, 256, 2);
  PackedWeight pw;
  EXPECT_FALSE(pack_weight({{DType::kQ4_1, 16, 256, a.data()}, {DType::kQ8_0, 16, 256, b.data()}}, pw, nullptr));
  auto c = random_weight(DType::kQ4_0, 16, 96, 3);
  EXPECT_TRUE(pack_weight({{DType::kQ4_0, 16, 96, c.data()}}, pw, nullptr));
  auto k = random_weight(DType::kQ4_K, 2, 256, 4);
  EXPECT_FALSE(pack_weight({{DType::kQ4_K, 2, 256, k.data()}, {DType::kQ4_K, 1, 256, nullptr}}, pw, nullptr));
}

}  // namespace
}  // namespace ballast::cpu
