// ThreadPool: one job at a time; chunks claimed through a generation-tagged counter.
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

// Spins until pred() or the spin budget runs out; true if pred() became true. Yields
// every few microseconds so that on an oversubscribed machine a spinning thread hands
// its core to runnable threads (often our own preempted worker or caller).
template <class Pred>
bool spin_until(Pred pred) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (pred()) return true;
    BALLAST_CPU_RELAX();
    if ((i & 63) == 63) {
      if (std::chrono::steady_clock::now() - start > kSpin) return pred();
      sched_yield();
    }
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
  int n = cores.empty() ? static_cast<int>(std::thread::hardware_concurrency())
                        : static_cast<int>(cores.size());
  if (allowed > 0 && n > allowed) n = allowed;
  return n > 0 ? n : 1;
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : default_threads();
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_main(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claim word layout: generation (24 bits) | chunk count (20) | next chunk index (20).
// A fetch_add result describes its job completely: a valid index means a chunk of
// that job, whose fields stay stable until the chunk is done, so a worker can safely
// run chunks of whichever job the word belongs to.
namespace {
constexpr int kIdxBits = 20, kCountBits = 20;
constexpr uint64_t kIdxMask = (1ull << kIdxBits) - 1, kCountMask = (1ull << kCountBits) - 1;
}  // namespace

uint64_t ThreadPool::pack_claim(uint32_t gen, uint32_t n_chunks) {
  return (static_cast<uint64_t>(gen & 0xFFFFFFu) << (kIdxBits + kCountBits)) |
         (static_cast<uint64_t>(n_chunks) << kIdxBits);
}

void ThreadPool::work_on() {
  t_inside_job = true;
  for (;;) {
    const uint64_t c = claim_.fetch_add(1, std::memory_order_acq_rel);
    const uint64_t idx = c & kIdxMask, n_chunks = (c >> kIdxBits) & kCountMask;
    if (idx >= n_chunks) break;  // job exhausted (or finished): touch nothing
    const int64_t b = static_cast<int64_t>(idx) * chunk_;
    const int64_t e = b + chunk_ < n_ ? b + chunk_ : n_;
    fn_(ctx_, b, e);
    if (done_chunks_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_chunks) done_chunks_.notify_one();
  }
  t_inside_job = false;
}

void ThreadPool::worker_main() {
  // Generation 0 is the constructed state: a job published before this thread got
  // here must still be seen as new.
  uint32_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      generation_.wait(seen);
      continue;  // re-check (wait may return spuriously)
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    work_on();
  }
}

void ThreadPool::parallel_for_impl(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n_threads_ == 1 || n <= grain || t_inside_job || busy_.exchange(true, std::memory_order_acquire)) {
    fn(ctx, 0, n);
    return;
  }
  // A few chunks per thread balance uneven progress; more would only add traffic on
  // the shared claim word (it dominates the cost of tiny jobs on many cores).
  const int64_t per_thread = n_threads_ <= 4 ? 4 : 2;
  int64_t chunk = (n + per_thread * n_threads_ - 1) / (per_thread * n_threads_);
  chunk = (chunk + grain - 1) / grain * grain;
  const uint32_t n_chunks = static_cast<uint32_t>((n + chunk - 1) / chunk);
  fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  chunk_ = chunk;
  done_chunks_.store(0, std::memory_order_relaxed);
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  claim_.store(pack_claim(gen, n_chunks), std::memory_order_release);
  generation_.store(gen, std::memory_order_release);
  // Sleeping workers need a futex wake; libstdc++ skips the syscall when none waits.
  generation_.notify_all();
  work_on();
  // Every chunk is claimed now; wait only for chunks still running elsewhere.
  if (!spin_until([&] { return done_chunks_.load(std::memory_order_acquire) == n_chunks; })) {
    for (uint32_t d = done_chunks_.load(); d != n_chunks; d = done_chunks_.load()) done_chunks_.wait(d);
  }
  busy_.store(false, std::memory_order_release);
}

}  // namespace ballast
