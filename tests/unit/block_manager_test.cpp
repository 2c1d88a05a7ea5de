// The engine's KV block manager: tables grow block by block, a full pool refuses without
// taking anything, shared blocks are freed only when their last reference goes, and a
// step's block tables are laid out row by row with -1 padding.
#include <gtest/gtest.h>

#include "engine/block_manager.h"

using ballast::ErrorCode;
using ballast::engine::BlockManager;

TEST(BlockManager, ReservesReleasesAndRefusesWhenFull) {
  BlockManager bm(4);
  ASSERT_TRUE(bm.reserve(7, 1).ok());
  EXPECT_EQ(bm.table(7), (std::vector<int32_t>{0}));
  ASSERT_TRUE(bm.reserve(7, 16).ok());  // still one block
  EXPECT_EQ(bm.used_blocks(), 1);
  ASSERT_TRUE(bm.reserve(7, 33).ok());  // three blocks
  EXPECT_EQ(bm.table(7), (std::vector<int32_t>{0, 1, 2}));
  auto st = bm.reserve(8, 40);  // needs three, one free
  EXPECT_EQ(st.code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(bm.free_blocks(), 1);
  EXPECT_TRUE(bm.table(8).empty());
  bm.release(7);
  EXPECT_EQ(bm.free_blocks(), 4);
  EXPECT_FALSE(bm.has(7));
}

TEST(BlockManager, SharedBlocksLiveUntilTheLastReference) {
  BlockManager bm(4);
  ASSERT_TRUE(bm.reserve(1, 32).ok());  // blocks 0, 1
  ASSERT_TRUE(bm.share(2, bm.table(1)).ok());
  EXPECT_EQ(bm.refs(0), 2);
  ASSERT_TRUE(bm.reserve(2, 40).ok());  // its own third block
  EXPECT_EQ(bm.table(2), (std::vector<int32_t>{0, 1, 2}));
  bm.release(1);
  EXPECT_EQ(bm.refs(0), 1);
  EXPECT_EQ(bm.free_blocks(), 1);
  bm.release(2);
  EXPECT_EQ(bm.free_blocks(), 4);
  EXPECT_FALSE(bm.share(3, {0}).ok());  // block 0 is free: nothing to share
}

TEST(BlockManager, FillsStepTables) {
  BlockManager bm(8);
  ASSERT_TRUE(bm.reserve(5, 40).ok());  // 0, 1, 2
  ASSERT_TRUE(bm.reserve(9, 1).ok());   // 3
  ballast::backend::StepPlan plan;
  bm.fill_tables({9, 5}, plan);
  EXPECT_EQ(plan.n_seqs, 2);
  EXPECT_EQ(plan.max_blocks, 3);
  EXPECT_EQ(plan.block_tables, (std::vector<int32_t>{3, -1, -1, 0, 1, 2}));
}
