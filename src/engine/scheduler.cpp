// Scheduler implementation.
#include "engine/scheduler.h"

#include <algorithm>

namespace ballast::engine {

bool Scheduler::enqueue(uint64_t id, const std::string& client) {
  if (static_cast<int64_t>(n_waiting_) >= limits_.max_queue) return false;
  auto& q = waiting_[client];
  if (q.empty()) turns_.push_back(client);
  q.push_back(id);
  client_of_[id] = client;
  ++n_waiting_;
  return true;
}

void Scheduler::remove(uint64_t id) {
  if (auto it = client_of_.find(id); it != client_of_.end()) {
    auto& q = waiting_[it->second];
    q.erase(std::remove(q.begin(), q.end(), id), q.end());
    if (q.empty()) {
      turns_.remove(it->second);
      waiting_.erase(it->second);
    }
    client_of_.erase(it);
    --n_waiting_;
  }
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
}

std::vector<ScheduledChunk> Scheduler::schedule(const std::function<SchedItem(uint64_t)>& item,
                                                const std::function<bool(uint64_t)>& can_admit) {
  // Admit the next client's oldest request while there is room; the client then goes to
  // the back of the turn order.
  while (!turns_.empty() && static_cast<int64_t>(running_.size()) < limits_.max_batch) {
    const std::string client = turns_.front();
    auto& q = waiting_[client];
    const uint64_t id = q.front();
    if (!can_admit(id)) break;
    q.pop_front();
    client_of_.erase(id);
    --n_waiting_;
    turns_.pop_front();
    if (q.empty()) waiting_.erase(client);
    else turns_.push_back(client);
    running_.push_back(id);
    admitted_.push_back(id);
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
