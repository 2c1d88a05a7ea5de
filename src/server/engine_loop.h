// The engine thread: runs Engine::step() while there is work and sleeps on a condition
// variable when idle. HTTP threads submit and cancel through it; it publishes queue,
// batch and KV-cache gauges after each step (the engine is touched by this thread only).
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
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
  void cancel(uint64_t id);
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
};

}  // namespace ballast::server
