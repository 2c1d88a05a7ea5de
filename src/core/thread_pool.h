// Persistent worker pool for data-parallel kernels. Decode calls parallel_for a few
// hundred times per token, so workers spin briefly before sleeping on a futex.
#pragma once
#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace ballast {

// One caller at a time: a pool is driven by the thread that owns it (the engine's
// compute thread); calls from inside a job run inline.
class ThreadPool {
 public:
  // n_threads counts the calling thread too; <= 0 means default_threads().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n), each chunk a multiple of
  // `grain` (except the last), on all threads; returns when all chunks are done.
  // Runs inline when n is small, the pool has one thread, or when called from inside
  // another parallel_for (no nested parallelism).
  template <class Fn>
  void parallel_for(int64_t n, Fn&& fn, int64_t grain = 1) {
    using F = std::remove_reference_t<Fn>;
    parallel_for_impl(
        n, grain,
        [](void* ctx, int64_t b, int64_t e) { (*static_cast<F*>(ctx))(b, e); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Calls fn(thread_index, n_threads) once on every thread (caller is index 0).
  template <class Fn>
  void run_on_all(Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run_on_all_impl([](void* ctx, int i, int n) { (*static_cast<F*>(ctx))(i, n); },
                    const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Physical cores of this machine (hyperthreads not counted); >= 1.
  static int default_threads();

 private:
  using RangeFn = void (*)(void*, int64_t, int64_t);
  using AllFn = void (*)(void*, int, int);
  void parallel_for_impl(int64_t n, int64_t grain, RangeFn fn, void* ctx);
  void run_on_all_impl(AllFn fn, void* ctx);
  void dispatch();  // publishes the current job and runs the caller's share
  void do_job(int thread_index);
  void worker_main(int thread_index);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;

  // Current job (written by the caller before bumping generation_).
  RangeFn range_fn_ = nullptr;
  AllFn all_fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  alignas(64) std::atomic<int64_t> next_chunk_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};  // workers still running the current job
  std::atomic<bool> stop_{false};
};

}  // namespace ballast
