// Attention conformance on the CPU backend: every case of
// ops_conformance_attention_cases.h and ops_conformance_encdec_cases.h against the
// float64 reference (see those headers).
#include <gtest/gtest.h>

#include "ops_conformance_attention_cases.h"
#include "ops_conformance_encdec_cases.h"
#include "ops_conformance_gtest.h"

namespace ballast::ops_test {
namespace {

class OpsAttention : public ::testing::TestWithParam<OpCase> {};
TEST_P(OpsAttention, Cpu) { run_on_cpu(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Ops, OpsAttention, ::testing::ValuesIn(attention_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& i) { return i.param.name; });
INSTANTIATE_TEST_SUITE_P(EncDec, OpsAttention, ::testing::ValuesIn(encdec_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& i) { return i.param.name; });

}  // namespace
}  // namespace ballast::ops_test
