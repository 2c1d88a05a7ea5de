// Persistent worker pool for data-parallel kernels. Decode calls parallel_for a few
// hundred times per token, so workers spin briefly before sleeping on a futex, and
// the caller never waits for a worker that has not picked up work (a descheduled
// worker on a busy machine costs nothing; the caller just does more chunks).
#pragma once
#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace ballast {

// Thread-safe: a job runs on the pool for one caller at a time; a call made while
// another caller's job is in flight (or from inside a job) runs inline.
class ThreadPool {
 public:
  // n_threads counts the calling thread too; <= 0 means default_threads().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n), each chunk a multiple of
  // `grain` long (except the last); returns when all chunks are done. Chunks run
  // concurrently on the caller and the workers.
  template <class Fn>
  void parallel_for(int64_t n, Fn&& fn, int64_t grain = 1) {
    using F = std::remove_reference_t<Fn>;
    parallel_for_impl(
        n, grain,
        [](void* ctx, int64_t b, int64_t e) { (*static_cast<F*>(ctx))(b, e); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Calls fn(i, size()) once for each i in [0, size()), concurrently where possible
  // (not necessarily one i per thread).
  template <class Fn>
  void run_on_all(Fn&& fn) {
    const int n = n_threads_;
    parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) fn(static_cast<int>(i), n);
    });
  }

  // Physical cores available to this process (hyperthreads not counted); >= 1.
  static int default_threads();

 private:
  using RangeFn = void (*)(void*, int64_t, int64_t);
  void parallel_for_impl(int64_t n, int64_t grain, RangeFn fn, void* ctx);
  static uint64_t pack_claim(uint32_t gen, uint32_t n_chunks);
  void work_on();  // claims and runs chunks of the current job until none is left
  void worker_main();

  int n_threads_ = 1;
  std::vector<std::thread> workers_;

  // Current job; written by the caller before claim_ is published and stable until
  // done_chunks_ reaches its chunk count.
  RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  // Generation | chunk count | next chunk index (see pack_claim); chunks are taken
  // with fetch_add, and a late worker can only ever take a valid chunk of the job
  // the word currently describes.
  alignas(64) std::atomic<uint64_t> claim_{0};
  alignas(64) std::atomic<uint32_t> done_chunks_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};
};

}  // namespace ballast
