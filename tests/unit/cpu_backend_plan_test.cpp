// CpuBackend::run rejects malformed step plans (bad positions, rows, block ids) before any
// op runs: a position of -1 must not become slot -1 of block 0.
#include <gtest/gtest.h>

#include "backend/backend.h"

using namespace ballast;

namespace {

backend::StepPlan plan_with(int32_t pos, int32_t seq_row, int32_t block) {
  backend::StepPlan p;
  p.tokens = {1};
  p.positions = {pos};
  p.seq_row = {seq_row};
  p.logit_rows = {0};
  p.n_seqs = 1;
  p.max_blocks = 1;
  p.block_tables = {block};
  return p;
}

TEST(CpuBackendPlan, RejectsMalformedPlansAndKeepsRunning) {
  auto be = backend::create_cpu_backend({}, std::make_shared<ThreadPool>(1));
  ASSERT_TRUE(be->init_kv({1, 1, 8}, 4).ok());
  int ran = 0;
  auto fwd = [&](backend::Ops& o) {
    ++ran;
    return o.status();
  };
  backend::StepResult out;
  for (auto p : {plan_with(-1, 0, 0), plan_with(-15, 0, 0), plan_with(16, 0, 0), plan_with(0, 1, 0),
                 plan_with(0, -1, 0), plan_with(0, 0, 4), plan_with(0, 0, -1)}) {
    Status st = be->run(p, fwd, {}, {}, out);
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.code(), ErrorCode::kInternal) << st.message();
  }
  EXPECT_EQ(ran, 0);
  EXPECT_TRUE(be->run(plan_with(3, 0, 2), fwd, {}, {}, out).ok());
  EXPECT_EQ(ran, 1);
}

}  // namespace
