// ThreadPool: coverage of every index exactly once, nesting, many short jobs.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

namespace ballast {
namespace {

TEST(CpuThreadPool, DefaultThreadsPositive) { EXPECT_GE(ThreadPool::default_threads(), 1); }

TEST(CpuThreadPool, CoversEachIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1000, 12345}) {
      for (int64_t grain : {1, 8, 100}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, [&](int64_t b, int64_t e) {
          ASSERT_LE(0, b);
          ASSERT_LT(b, e);
          ASSERT_LE(e, n);
          if (e != n) {
            ASSERT_EQ(b % grain, 0);
          }
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        }, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
      }
    }
  }
}

TEST(CpuThreadPool, ManyShortJobs) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int it = 0; it < 20000; ++it) {
    pool.parallel_for(16, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
  }
  EXPECT_EQ(total.load(), 20000 * 16);
}

TEST(CpuThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  pool.parallel_for(8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.parallel_for(10, [&](int64_t bb, int64_t ee) { total.fetch_add(ee - bb); });
    }
  });
  EXPECT_EQ(total.load(), 80);
}

TEST(CpuThreadPool, RunOnAll) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> seen(3);
  pool.run_on_all([&](int i, int n) {
    EXPECT_EQ(n, 3);
    seen[i].fetch_add(1);
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

TEST(CpuThreadPool, ConcurrentCallersAreSafe) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  auto caller = [&] {
    for (int it = 0; it < 2000; ++it) pool.parallel_for(32, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 2000 * 32);
}

TEST(CpuThreadPool, SurvivesIdleSleep) {
  ThreadPool pool(2);
  std::atomic<int> c{0};
  pool.parallel_for(4, [&](int64_t b, int64_t e) { c.fetch_add(static_cast<int>(e - b)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // workers go to sleep
  pool.parallel_for(4, [&](int64_t b, int64_t e) { c.fetch_add(static_cast<int>(e - b)); });
  EXPECT_EQ(c.load(), 8);
}

}  // namespace
}  // namespace ballast
