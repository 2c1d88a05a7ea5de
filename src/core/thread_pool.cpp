// ThreadPool: one job at a time, chunks claimed dynamically through an atomic counter.
#include "core/thread_pool.h"

#include <sched.h>

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BALLAST_CPU_RELAX() _mm_pause()
#else
#define BALLAST_CPU_RELAX() std::this_thread::yield()
#endif

namespace ballast {
namespace {

thread_local bool t_inside_job = false;

// How long a thread busy-waits before sleeping: decode's serial gaps between kernels
// are tens of microseconds, so this keeps workers hot across one forward pass.
constexpr auto kSpin = std::chrono::microseconds(200);

// Spins until pred() or the spin budget runs out; true if pred() became true.
template <class Pred>
bool spin_until(Pred pred) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (pred()) return true;
    BALLAST_CPU_RELAX();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() - start > kSpin) return pred();
  }
}

}  // namespace

int ThreadPool::default_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::set<std::pair<int, int>> cores;  // (package, core)
  int allowed = 0;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      ++allowed;
      std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::ifstream core_f(base + "core_id"), pkg_f(base + "physical_package_id");
      int core = -1, pkg = -1;
      if (core_f >> core && pkg_f >> pkg) {
        cores.insert({pkg, core});
      } else {
        cores.insert({-1, cpu});  // no topology info: count logical cpus
      }
    }
  }
  int n = cores.empty() ? static_cast<int>(std::thread::hardware_concurrency()) : static_cast<int>(cores.size());
  if (allowed > 0 && n > allowed) n = allowed;
  return n > 0 ? n : 1;
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : default_threads();
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::do_job(int thread_index) {
  t_inside_job = true;
  if (all_fn_) {
    all_fn_(ctx_, thread_index, n_threads_);
  } else {
    for (;;) {
      int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
      int64_t b = c * chunk_;
      if (b >= n_) break;
      int64_t e = b + chunk_ < n_ ? b + chunk_ : n_;
      range_fn_(ctx_, b, e);
    }
  }
  t_inside_job = false;
}

void ThreadPool::worker_main(int thread_index) {
  // Generation 0 is the constructed state: a job published before this thread got
  // here must still be seen as new.
  uint32_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      generation_.wait(seen);
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    do_job(thread_index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::dispatch() {
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  // A sleeping worker needs a futex wake; spinning ones see the bump by themselves.
  // notify_all is cheap when nobody sleeps (libstdc++ tracks waiters).
  generation_.notify_all();
  do_job(0);
  if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    for (int p = pending_.load(); p != 0; p = pending_.load()) pending_.wait(p);
  }
  range_fn_ = nullptr;
  all_fn_ = nullptr;
}

void ThreadPool::parallel_for_impl(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n_threads_ == 1 || n <= grain || t_inside_job) {
    fn(ctx, 0, n);
    return;
  }
  // ~4 chunks per thread balances uneven progress without much atomic traffic.
  int64_t chunk = (n + 4 * n_threads_ - 1) / (4 * n_threads_);
  chunk = (chunk + grain - 1) / grain * grain;
  range_fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  chunk_ = chunk;
  next_chunk_.store(0, std::memory_order_relaxed);
  dispatch();
}

void ThreadPool::run_on_all_impl(AllFn fn, void* ctx) {
  if (n_threads_ == 1 || t_inside_job) {
    fn(ctx, 0, 1);
    return;
  }
  all_fn_ = fn;
  ctx_ = ctx;
  dispatch();
}

}  // namespace ballast
