// The engine thread: runs Engine::step() while there is work and sleeps on a condition
// variable when idle. HTTP threads submit and cancel through it; it publishes queue,
// batch and KV-cache gauges after each step (the engine is touched by this thread only).
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "engine/engine.h"
#include "server/metrics.h"

namespace ballast::server {

class EngineLoop {
 public:
  EngineLoop(engine::Engine& engine, Metrics& metrics) : engine_(engine), metrics_(metrics) {}
  ~EngineLoop() { stop(); }

  void start();
  void stop();

  Result<uint64_t> submit(engine::GenerationRequest req, engine::Engine::Callback cb);
  // All of a request's sequences, or none (see Engine::submit_all).
  Result<std::vector<uint64_t>> submit_all(std::vector<engine::GenerationRequest> reqs,
                                           std::vector<engine::Engine::Callback> cbs);
  void cancel(uint64_t id);
  // Cancels every unfinished sequence (drain timeout): each gets its cancelled event, so
  // its request ends with an error instead of being cut off.
  void cancel_all();
  // Sequences submitted and not yet finished (waiting + running + in the inbox).
  int64_t in_flight() const { return in_flight_; }
  int64_t ctx_size() const { return engine_.options().ctx_size; }

 private:
  void run();
  engine::Engine& engine_;
  Metrics& metrics_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
  bool stop_ = false;
  std::atomic<int64_t> in_flight_{0};
  // Ids of unfinished sequences, for cancel_all.
  struct Slot {
    uint64_t id = 0;
    bool finished = false;
  };
  std::mutex ids_mu_;
  std::set<uint64_t> ids_;
};

}  // namespace ballast::server
