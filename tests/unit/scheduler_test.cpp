// Scheduler bookkeeping without a model: admission, decode-first, prefill chunking.
#include <gtest/gtest.h>

#include <map>

#include "engine/scheduler.h"

using namespace ballast::engine;

namespace {
struct Fake {
  std::map<uint64_t, SchedItem> items;
  int64_t free_tokens = 1 << 20;
  std::function<SchedItem(uint64_t)> item() { return [this](uint64_t id) { return items.at(id); }; }
  std::function<bool(uint64_t)> admit() {
    return [this](uint64_t id) { return items.at(id).total <= free_tokens; };
  }
};
}  // namespace

TEST(Scheduler, QueueBoundRefuses) {
  Scheduler s({2, 100, 2});
  EXPECT_TRUE(s.enqueue(1));
  EXPECT_TRUE(s.enqueue(2));
  EXPECT_FALSE(s.enqueue(3));
}

TEST(Scheduler, ChunksPrefillWithinBudgetAndDecodesFirst) {
  Scheduler s({4, 10, 8});
  Fake f;
  f.items[1] = {1, 0, 25};  // prompt of 25
  s.enqueue(1);
  auto c = s.schedule(f.item(), f.admit());
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].n_tokens, 10);
  f.items[1].computed = 10;
  f.items[2] = {2, 4, 5};  // a decoding request
  s.enqueue(2);
  c = s.schedule(f.item(), f.admit());
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 2u);  // decode first
  EXPECT_EQ(c[0].n_tokens, 1);
  EXPECT_EQ(c[1].id, 1u);
  EXPECT_EQ(c[1].n_tokens, 9);  // the rest of the budget
}

TEST(Scheduler, MaxBatchAndAdmission) {
  Scheduler s({1, 100, 8});
  Fake f;
  f.items[1] = {1, 0, 5};
  f.items[2] = {2, 0, 5};
  s.enqueue(1);
  s.enqueue(2);
  auto c = s.schedule(f.item(), f.admit());
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(s.running(), 1u);
  EXPECT_EQ(s.waiting(), 1u);
  s.remove(1);
  f.free_tokens = 4;  // request 2 does not fit yet
  c = s.schedule(f.item(), f.admit());
  EXPECT_TRUE(c.empty());
  f.free_tokens = 100;
  c = s.schedule(f.item(), f.admit());
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].id, 2u);
}

TEST(Scheduler, ClientsTakeTurns) {
  // Client a queued 4 requests before b's 2: b's still join second and fourth.
  Scheduler s({1, 100, 16});
  Fake f;
  for (uint64_t id = 1; id <= 6; ++id) f.items[id] = {id, 0, 3};
  for (uint64_t id = 1; id <= 4; ++id) s.enqueue(id, "a");
  s.enqueue(5, "b");
  s.enqueue(6, "b");
  std::vector<uint64_t> order;
  while (s.waiting() > 0) {
    s.schedule(f.item(), f.admit());
    ASSERT_EQ(s.running(), 1u);
    order.push_back(s.running_ids()[0]);
    s.remove(s.running_ids()[0]);
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 5, 2, 6, 3, 4}));
}

TEST(Scheduler, RemoveWaitingFreesQueueRoom) {
  Scheduler s({1, 100, 2});
  EXPECT_TRUE(s.enqueue(1, "a"));
  EXPECT_TRUE(s.enqueue(2, "b"));
  EXPECT_FALSE(s.enqueue(3, "c"));
  s.remove(2);  // cancelled while waiting
  EXPECT_EQ(s.waiting(), 1u);
  EXPECT_TRUE(s.enqueue(3, "c"));
}

TEST(Scheduler, TakeAdmittedReportsEachIdOnce) {
  Scheduler s({2, 100, 8});
  Fake f;
  f.items[1] = {1, 0, 3};
  f.items[2] = {2, 0, 3};
  s.enqueue(1, "a");
  s.enqueue(2, "b");
  s.schedule(f.item(), f.admit());
  EXPECT_EQ(s.take_admitted(), (std::vector<uint64_t>{1, 2}));
  s.schedule(f.item(), f.admit());
  EXPECT_TRUE(s.take_admitted().empty());
}
