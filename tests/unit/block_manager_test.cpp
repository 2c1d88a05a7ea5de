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

namespace {

std::vector<int32_t> seq_tokens(int n, int base) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = base + i;
  return t;
}

}  // namespace

TEST(PrefixCache, MatchesTheLongestNamedRunOfFullBlocks) {
  BlockManager bm(8, true);
  auto a = seq_tokens(40, 100);  // blocks [0,16) [16,32) + 8 tokens
  ASSERT_TRUE(bm.reserve(1, 40).ok());
  bm.commit(1, a, 40);  // names the two full blocks only
  EXPECT_EQ(bm.cached_blocks(), 2);
  EXPECT_EQ(bm.match(a, 10), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(bm.match(a, 1), (std::vector<int32_t>{0}));
  // Same first block, different second: only the first matches.
  auto b = a;
  b[20] = 7;
  EXPECT_EQ(bm.match(b, 10), (std::vector<int32_t>{0}));
  // A different first block hides the second, even with equal tokens there (chain keys).
  auto c = a;
  c[0] = 1;
  EXPECT_TRUE(bm.match(c, 10).empty());
}

TEST(PrefixCache, ReleasedBlocksStayCachedAndAreSharedAgain) {
  BlockManager bm(4, true);
  auto a = seq_tokens(33, 0);
  ASSERT_TRUE(bm.reserve(1, 33).ok());  // 3 blocks
  bm.commit(1, a, 33);
  bm.release(1);
  EXPECT_EQ(bm.free_blocks(), 4);  // parked blocks count as free
  EXPECT_EQ(bm.used_blocks(), 0);
  auto m = bm.match(a, 2);
  ASSERT_EQ(m, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(bm.parked_among(m), 2);
  ASSERT_TRUE(bm.share(2, m).ok());
  EXPECT_EQ(bm.refs(0), 1);
  EXPECT_EQ(bm.parked_among(m), 0);
  ASSERT_TRUE(bm.reserve(2, 40).ok());  // one more block for positions 32..39
  EXPECT_EQ(bm.table(2).size(), 3u);
  EXPECT_EQ(bm.used_blocks(), 3);
}

TEST(PrefixCache, EvictsLeastRecentlyFreedTailFirstUnderPressure) {
  BlockManager bm(4, true);
  auto a = seq_tokens(32, 0), b = seq_tokens(32, 1000);
  ASSERT_TRUE(bm.reserve(1, 32).ok());
  bm.commit(1, a, 32);
  ASSERT_TRUE(bm.reserve(2, 32).ok());
  bm.commit(2, b, 32);
  bm.release(1);  // a parks first: evicted first
  bm.release(2);
  ASSERT_TRUE(bm.reserve(3, 16).ok());  // takes one block: a's tail (its second block)
  EXPECT_EQ(bm.match(a, 2).size(), 1u);
  EXPECT_EQ(bm.match(b, 2).size(), 2u);
  ASSERT_TRUE(bm.reserve(3, 32).ok());  // then a's first block
  EXPECT_TRUE(bm.match(a, 2).empty());
  EXPECT_EQ(bm.match(b, 2).size(), 2u);
  EXPECT_EQ(bm.reserve(4, 48).code(), ErrorCode::kResourceExhausted);  // 2 left (b's, parked)
  ASSERT_TRUE(bm.reserve(4, 32).ok());
  EXPECT_TRUE(bm.match(b, 2).empty());
  EXPECT_EQ(bm.free_blocks(), 0);
}

TEST(PrefixCache, DuplicateBlocksStayUnnamedAndOffMeansNoSharing) {
  BlockManager bm(4, true);
  auto a = seq_tokens(16, 5);
  ASSERT_TRUE(bm.reserve(1, 16).ok());
  ASSERT_TRUE(bm.reserve(2, 16).ok());
  bm.commit(1, a, 16);
  bm.commit(2, a, 16);  // the same prompt prefilled at once: block 1 is not named
  EXPECT_EQ(bm.cached_blocks(), 1);
  bm.release(2);
  EXPECT_EQ(bm.match(a, 1), (std::vector<int32_t>{0}));
  BlockManager off(4, false);
  ASSERT_TRUE(off.reserve(1, 16).ok());
  off.commit(1, a, 16);
  EXPECT_TRUE(off.match(a, 1).empty());
  off.release(1);
  EXPECT_EQ(off.free_blocks(), 4);
}
