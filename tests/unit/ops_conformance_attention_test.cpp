// Attention conformance on the CPU backend: every case of
// ops_conformance_attention_cases.h and ops_conformance_encdec_cases.h against the
// float64 reference (see those headers), in both CPU modes: --exact (float KV cache, the
// cases' own tolerances) and the default (half-float KV cache: outputs within 4e-3 of
// the reference, about four half-float ulps of the cached K and V; forced here, as the
// backend picks it for quantized weights only).
#include <gtest/gtest.h>

#include <cstdlib>

#include "backend/cpu/matmul.h"
#include "ops_conformance_attention_cases.h"
#include "ops_conformance_encdec_cases.h"
#include "ops_conformance_gtest.h"

namespace ballast::ops_test {
namespace {

class OpsAttention : public ::testing::TestWithParam<OpCase> {};
TEST_P(OpsAttention, Cpu) {
  cpu::set_matmul_exact(true);
  run_on_cpu(GetParam());
  cpu::set_matmul_exact(false);
}
TEST_P(OpsAttention, CpuHalfFloatCache) {
  setenv("BALLAST_CPU_KV", "f16", 1);  // whatever the case's weight dtypes
  run_on_cpu(GetParam(), 4e-3);
  unsetenv("BALLAST_CPU_KV");
}
INSTANTIATE_TEST_SUITE_P(Ops, OpsAttention, ::testing::ValuesIn(attention_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& i) { return i.param.name; });
INSTANTIATE_TEST_SUITE_P(EncDec, OpsAttention, ::testing::ValuesIn(encdec_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& i) { return i.param.name; });

}  // namespace
}  // namespace ballast::ops_test
