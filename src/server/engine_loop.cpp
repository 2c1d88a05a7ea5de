// Engine thread: step while busy, wait on a condition variable while idle.
#include "server/engine_loop.h"

#include <malloc.h>

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
  std::vector<engine::GenerationRequest> reqs;
  std::vector<engine::Engine::Callback> cbs;
  reqs.push_back(std::move(req));
  cbs.push_back(std::move(cb));
  auto r = submit_all(std::move(reqs), std::move(cbs));
  if (!r.ok()) return r.status();
  return r.value().front();
}

Result<std::vector<uint64_t>> EngineLoop::submit_all(std::vector<engine::GenerationRequest> reqs,
                                                     std::vector<engine::Engine::Callback> cbs) {
  std::vector<std::shared_ptr<Slot>> slots;
  for (auto& cb : cbs) {
    auto slot = slots.emplace_back(std::make_shared<Slot>());
    cb = [this, slot, cb = std::move(cb)](const engine::TokenEvent& ev) {
      if (ev.finish != engine::FinishReason::kNone) {
        in_flight_--;
        std::lock_guard<std::mutex> lk(ids_mu_);
        slot->finished = true;
        if (slot->id) ids_.erase(slot->id);
      }
      cb(ev);
    };
  }
  const auto n = static_cast<int64_t>(cbs.size());
  in_flight_ += n;
  auto r = engine_.submit_all(std::move(reqs), std::move(cbs));
  if (!r.ok()) {
    in_flight_ -= n;
    return r;
  }
  {
    std::lock_guard<std::mutex> lk(ids_mu_);
    for (size_t i = 0; i < slots.size() && i < r.value().size(); ++i) {
      slots[i]->id = r.value()[i];
      if (!slots[i]->finished) ids_.insert(r.value()[i]);
    }
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
  bool busy = false;
  auto last_trim = std::chrono::steady_clock::now() - std::chrono::seconds(10);
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
    busy = busy || did;
    metrics_.set_engine(static_cast<int64_t>(engine_.waiting()), static_cast<int64_t>(engine_.running()),
                        engine_.kv().used_blocks(), engine_.kv().total_blocks());
    metrics_.set_prefix_cache(engine_.prefix_cache(), engine_.prefix_queries(), engine_.prefix_hits());
    if (!did) {
      // A burst just ended: return the pages its freed buffers occupy (request texts,
      // token events, JSON) to the system, at most every 5 s. KV blocks stay: a cache.
      if (busy && std::chrono::steady_clock::now() - last_trim > std::chrono::seconds(5)) {
        ::malloc_trim(0);
        last_trim = std::chrono::steady_clock::now();
      }
      busy = false;
      std::unique_lock<std::mutex> lk(mu_);
      // Wake on submit/cancel; the timeout covers requests waiting for KV room.
      cv_.wait_for(lk, std::chrono::milliseconds(engine_.idle() ? 1000 : 20), [&] { return pending_ || stop_; });
    }
  }
}

}  // namespace ballast::server
