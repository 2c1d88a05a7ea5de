// Scheduler implementation.
#include "engine/scheduler.h"

#include <algorithm>

namespace ballast::engine {

bool Scheduler::enqueue(uint64_t id) {
  if (static_cast<int64_t>(waiting_.size()) >= limits_.max_queue) return false;
  waiting_.push_back(id);
  return true;
}

void Scheduler::remove(uint64_t id) {
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id), waiting_.end());
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
}

std::vector<ScheduledChunk> Scheduler::schedule(const std::function<SchedItem(uint64_t)>& item,
                                                const std::function<bool(uint64_t)>& can_admit) {
  // Admit in arrival order while there is room (no overtaking: fairness).
  while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < limits_.max_batch &&
         can_admit(waiting_.front())) {
    running_.push_back(waiting_.front());
    waiting_.pop_front();
  }
  std::vector<ScheduledChunk> out;
  int64_t budget = limits_.token_budget;
  // Decodes first: one token each, so latency of running streams stays flat.
  for (uint64_t id : running_) {
    SchedItem it = item(id);
    if (it.total - it.computed == 1 && budget > 0) {
      out.push_back({id, 1});
      --budget;
    }
  }
  // Then prefill chunks.
  for (uint64_t id : running_) {
    if (budget <= 0) break;
    SchedItem it = item(id);
    int64_t want = it.total - it.computed;
    if (want <= 1) continue;
    int64_t n = std::min(want, budget);
    out.push_back({id, n});
    budget -= n;
  }
  return out;
}

}  // namespace ballast::engine
