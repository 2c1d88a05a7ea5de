// Continuous-batching scheduler: pure bookkeeping, no model. Each step it decides how
// many tokens every running request computes (vLLM v1 style: computed vs. wanted
// tokens, no prefill/decode phases) and which waiting requests join: clients take turns
// (round-robin over the clients with waiting requests, arrival order within a client), so
// one client's backlog cannot starve another's.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <vector>

namespace ballast::engine {

struct SchedulerLimits {
  int64_t max_batch = 8;          // running requests at once
  int64_t token_budget = 512;     // tokens computed per step (prefill chunking)
  int64_t max_queue = 64;         // waiting requests before new ones are refused
};

// What the scheduler needs to know about a request.
struct SchedItem {
  uint64_t id = 0;
  int64_t computed = 0;   // tokens already in the KV cache
  int64_t total = 0;      // tokens known (prompt + generated); wants total - computed
};

struct ScheduledChunk {
  uint64_t id;
  int64_t n_tokens;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerLimits limits) : limits_(limits) {}

  // Queue a request of `client` (any stable name: a peer address); false when the queue
  // is full (the engine enforces the bound at submission; this is the last guard).
  bool enqueue(uint64_t id, const std::string& client = {});
  // Remove a request wherever it is (finished, cancelled, failed).
  void remove(uint64_t id);

  // One step. items(id) gives the current state of a request; can_admit(id) says whether
  // the KV cache has room for a waiting request's prompt. Waiting requests join in client
  // turns while the batch and the cache have room (a head that does not fit blocks the
  // rest: no overtaking). Running requests' decode tokens come first, then prefill chunks
  // in admission order within the token budget.
  std::vector<ScheduledChunk> schedule(const std::function<SchedItem(uint64_t)>& item,
                                       const std::function<bool(uint64_t)>& can_admit);

  size_t waiting() const { return n_waiting_; }
  size_t running() const { return running_.size(); }
  const std::vector<uint64_t>& running_ids() const { return running_; }
  const SchedulerLimits& limits() const { return limits_; }
  // Ids moved from waiting to running since the last call.
  std::vector<uint64_t> take_admitted() { return std::move(admitted_); }

 private:
  SchedulerLimits limits_;
  std::map<std::string, std::deque<uint64_t>> waiting_;  // per client, arrival order
  std::list<std::string> turns_;                         // clients with waiting requests, next first
  std::map<uint64_t, std::string> client_of_;            // waiting ids
  size_t n_waiting_ = 0;
  std::vector<uint64_t> running_;
  std::vector<uint64_t> admitted_;
};

}  // namespace ballast::engine
