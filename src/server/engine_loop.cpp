// Engine thread: step while busy, wait on a condition variable while idle.
#include "server/engine_loop.h"

#include <chrono>

#include "core/log.h"

namespace ballast::server {

void EngineLoop::start() {
  thread_ = std::thread([this] { run(); });
}

void EngineLoop::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<uint64_t> EngineLoop::submit(engine::GenerationRequest req, engine::Engine::Callback cb) {
  auto slot = std::make_shared<Slot>();
  auto wrapped = [this, slot, cb = std::move(cb)](const engine::TokenEvent& ev) {
    if (ev.finish != engine::FinishReason::kNone) {
      in_flight_--;
      std::lock_guard<std::mutex> lk(ids_mu_);
      slot->finished = true;
      if (slot->id) ids_.erase(slot->id);
    }
    cb(ev);
  };
  in_flight_++;
  auto r = engine_.submit(std::move(req), std::move(wrapped));
  if (!r.ok()) {
    in_flight_--;
    return r;
  }
  {
    std::lock_guard<std::mutex> lk(ids_mu_);
    slot->id = r.value();
    if (!slot->finished) ids_.insert(r.value());
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    pending_ = true;
  }
  cv_.notify_one();
  return r;
}

void EngineLoop::cancel(uint64_t id) {
  engine_.cancel(id);
  {
    std::lock_guard<std::mutex> lk(mu_);
    pending_ = true;
  }
  cv_.notify_one();
}

void EngineLoop::cancel_all() {
  std::set<uint64_t> ids;
  {
    std::lock_guard<std::mutex> lk(ids_mu_);
    ids = ids_;
  }
  for (uint64_t id : ids) engine_.cancel(id);
  {
    std::lock_guard<std::mutex> lk(mu_);
    pending_ = true;
  }
  cv_.notify_one();
}

void EngineLoop::run() {
  while (true) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
      pending_ = false;
    }
    bool did = false;
    try {
      did = engine_.step();
    } catch (const std::exception& e) {
      // A bug, not a user error: log it and keep serving other requests.
      log::err("engine.step_exception", std::string("engine step threw: ") + e.what());
    }
    metrics_.set_engine(static_cast<int64_t>(engine_.waiting()), static_cast<int64_t>(engine_.running()),
                        engine_.kv().used_blocks(), engine_.kv().total_blocks());
    metrics_.set_prefix_cache(engine_.prefix_cache(), engine_.prefix_queries(), engine_.prefix_hits());
    if (!did) {
      std::unique_lock<std::mutex> lk(mu_);
      // Wake on submit/cancel; the timeout covers requests waiting for KV room.
      cv_.wait_for(lk, std::chrono::milliseconds(engine_.idle() ? 1000 : 20), [&] { return pending_ || stop_; });
    }
  }
}

}  // namespace ballast::server
