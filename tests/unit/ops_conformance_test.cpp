// Op conformance on the CPU backend: every case of ops_conformance_cases.h (embed,
// embed_positions, norm, linear / linear_add / linear_glu over every weight dtype,
// activation, add, logits) against float64 references, plus CPU-only checks (numerics
// check, failing ops). The attention cases run in ops_conformance_attention_test.cpp.
// BALLAST_OPS_VERBOSE=1 prints each comparison's worst error.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <limits>

#include "backend/backend.h"
#include "ops_conformance_cases.h"
#include "ops_conformance_gtest.h"

namespace ballast::ops_test {
namespace {

class OpsConformance : public ::testing::TestWithParam<OpCase> {};
TEST_P(OpsConformance, Cpu) { run_on_cpu(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Ops, OpsConformance, ::testing::ValuesIn(op_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& i) { return i.param.name; });

// Ops::check under --check-numerics: a NaN/Inf fails the step naming where (CPU only: the
// GPU may ignore check); without the option the step runs.
TEST(OpsCpu, CheckNumericsNamesTheOp) {
  auto be = backend::create_cpu_backend({}, cpu_pool());
  const int64_t c = 16;
  Rng r(1);
  auto x = r.normals(4 * c);
  x[2 * c + 5] = std::numeric_limits<double>::quiet_NaN();
  GtestSink sink;
  Harness h(*be, sink, "check_numerics");
  const WeightId in = h.input(x, c);
  auto fwd = h.reader([=](Ops& o) {
    Tensor t = o.embed(in, 1.f);
    o.check(t, 7);
    return t;
  }, c);
  ASSERT_TRUE(be->init_kv({1, 1, 8}, 8).ok());
  backend::LogitsRequest req;
  req.return_logits = true;
  backend::StepResult res;
  backend::StepOptions on;
  on.check_numerics = true;
  Status st = be->run(simple_plan(iota_tokens(4), 10), fwd, req, on, res);
  EXPECT_EQ(st.code(), ErrorCode::kNumericalError) << st.message();
  EXPECT_NE(st.message().find("layer 7 produced"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("position 12"), std::string::npos) << "names the sequence position: " << st.message();
  st = be->run(simple_plan(iota_tokens(4), 10), fwd, req, backend::StepOptions{}, res);
  EXPECT_TRUE(st.ok()) << st.message();
}

// An op that cannot run fails the step with a status (ops never throw), and the backend
// runs the next step.
TEST(OpsCpu, FailingAttentionFailsTheStep) {
  auto be = backend::create_cpu_backend({}, cpu_pool());
  GtestSink sink;
  Harness h(*be, sink, "failing_attention");
  const int64_t W = 3 * 64;
  Rng r(2);
  const WeightId in = h.input(r.normals(2 * W), W);
  h.init_kv({1, 1, 64}, 8);
  for (int mode = 0; mode < 3; ++mode) {
    backend::AttentionSpec a;
    a.n_heads = a.n_kv_heads = 1;
    a.head_dim = 64;
    a.layer = mode == 0 ? 1 : 0;  // mode 0: no such layer in the pool
    a.cross = mode == 1;          // mode 1: cross-attention in a step without cross tables
    a.rel_bias = mode == 2 ? h.vec({1.0, 2.0}) : kNoWeight;  // mode 2: bias table of the wrong size
    a.rel_max = 4;
    std::vector<float> out;
    Status st = h.run_status(simple_plan(iota_tokens(2)), h.reader([=](Ops& o) { return o.attention(o.embed(in, 1.f), a); }, 64), out);
    EXPECT_FALSE(st.ok()) << "mode " << mode;
    EXPECT_EQ(st.code(), ErrorCode::kInternal) << st.message();
  }
  std::vector<float> out;
  EXPECT_TRUE(h.run_status(simple_plan(iota_tokens(2)), h.reader([=](Ops& o) { return o.embed(in, 1.f); }, W), out).ok());
}

}  // namespace
}  // namespace ballast::ops_test
