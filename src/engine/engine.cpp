// Engine step loop: schedule -> build one batch -> forward -> sample -> stop checks.
#include "engine/engine.h"

#include <random>

namespace ballast::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kError: return "error";
    case FinishReason::kCancelled: return "cancelled";
    default: return "";
  }
}

Engine::Engine(model::Model& model, std::shared_ptr<const std::vector<uint8_t>> valid, EngineOptions opts)
    : model_(model),
      valid_(std::move(valid)),
      opts_(opts),
      kv_(model.kv_shape(), opts.kv_blocks > 0 ? opts.kv_blocks
                                               : KvCache::blocks_for(opts.ctx_size) * opts.limits.max_batch,
          model.host_kv()),
      sched_(opts.limits) {}

Result<uint64_t> Engine::submit(GenerationRequest req, Callback cb) {
  std::lock_guard<std::mutex> lk(mu_);
  if (static_cast<int64_t>(n_waiting_ + inbox_.size()) >= opts_.limits.max_queue)
    return error(ErrorCode::kResourceExhausted, "request queue full (" +
                                                    std::to_string(opts_.limits.max_queue) + " waiting)");
  uint64_t id = next_id_++;
  auto a = std::make_unique<Active>(Active{std::move(req), std::move(cb), Sampler({}, nullptr), {}, 0, 0, 0, 0});
  a->sampler = Sampler(a->req.sampling, valid_);
  a->device_seed = a->req.sampling.seed ? *a->req.sampling.seed : std::random_device{}() * 0x100000001ull ^ next_id_;
  a->tokens = a->req.prompt;
  inbox_.emplace_back(id, std::move(a));
  return id;
}

void Engine::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  cancels_.insert(id);
}

bool Engine::idle() const {
  std::lock_guard<std::mutex> lk(mu_);
  return inbox_.empty() && active_.empty() && cancels_.empty();
}

size_t Engine::waiting() const { return n_waiting_; }
size_t Engine::running() const { return n_running_; }

void Engine::drain_inbox() {
  std::vector<std::pair<uint64_t, std::unique_ptr<Active>>> in;
  std::set<uint64_t> cancels;
  {
    std::lock_guard<std::mutex> lk(mu_);
    in.swap(inbox_);
    cancels.swap(cancels_);
  }
  for (auto& [id, a] : in) {
    a->seq = next_seq_++;
    active_[id] = std::move(a);
    sched_.enqueue(id);  // queue bound enforced at submit
  }
  for (uint64_t id : cancels)
    if (active_.count(id)) finish(id, FinishReason::kCancelled, Status(), {});
}

void Engine::finish(uint64_t id, FinishReason r, Status st, TokenEvent ev) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  ev.finish = r;
  ev.status = std::move(st);
  auto cb = std::move(it->second->cb);
  kv_.release(it->second->seq);
  model_.release_sequence(it->second->seq);
  sched_.remove(id);
  active_.erase(it);
  if (cb) cb(ev);
}

bool Engine::step() {
  drain_inbox();
  if (active_.empty()) {
    n_waiting_ = n_running_ = 0;
    return false;
  }
  auto item = [&](uint64_t id) {
    const auto& a = *active_.at(id);
    return SchedItem{id, a.computed, static_cast<int64_t>(a.tokens.size())};
  };
  auto can_admit = [&](uint64_t id) {
    // Room for the prompt plus the blocks every running request may still claim.
    const auto& a = *active_.at(id);
    return KvCache::blocks_for(static_cast<int64_t>(a.tokens.size()) + 1) <= kv_.free_blocks();
  };
  auto chunks = sched_.schedule(item, can_admit);
  n_waiting_ = sched_.waiting();
  n_running_ = sched_.running();
  if (chunks.empty()) {
    // Nothing fits: the oldest waiting request can never be admitted if the cache is
    // empty; fail it instead of hanging.
    if (sched_.running() == 0 && sched_.waiting() > 0) {
      for (auto& [id, a] : active_) {
        finish(id, FinishReason::kError,
               error(ErrorCode::kResourceExhausted, "prompt does not fit in the KV cache"), {});
        break;
      }
      return true;
    }
    return false;
  }
  model::Batch batch;
  std::vector<uint64_t> logit_owner;  // request of each logits row
  for (const auto& ch : chunks) {
    Active& a = *active_.at(ch.id);
    Status st = kv_.reserve(a.seq, a.computed + ch.n_tokens);
    if (!st.ok()) {
      finish(ch.id, FinishReason::kError, st, {});
      continue;
    }
    for (int64_t i = 0; i < ch.n_tokens; ++i) {
      int64_t pos = a.computed + i;
      bool last = pos + 1 == static_cast<int64_t>(a.tokens.size());
      batch.add(a.tokens[pos], static_cast<int32_t>(pos), a.seq, last);
      if (last) logit_owner.push_back(ch.id);
    }
  }
  if (batch.size() == 0) return true;
  // Device models sample where the logits are: only ids (and top logprobs) cross the bus.
  // Plain greedy rows take the cheaper greedy kernel.
  bool device_greedy = model_.has_device_greedy() && !logit_owner.empty();
  for (uint64_t id : logit_owner) {
    if (!device_greedy) break;
    const SamplingParams& p = active_.at(id)->sampler.params();
    device_greedy = p.temperature == 0.0 && p.repetition_penalty == 1.0 && p.presence_penalty == 0.0 &&
                    p.frequency_penalty == 0.0 && p.logit_bias.empty() && p.top_logprobs == 0;
  }
  const bool device_sample = !device_greedy && model_.has_device_sampler() && !logit_owner.empty();
  std::vector<float> logits;
  std::vector<int32_t> greedy_ids;
  std::vector<float> greedy_lp;
  std::vector<model::DeviceSampleResult> sampled;
  Status st;
  if (device_greedy) {
    st = model_.forward_greedy(batch, kv_, valid_.get(), greedy_ids, greedy_lp, opts_.forward);
  } else if (device_sample) {
    std::vector<model::DeviceSampleRow> rows;
    rows.reserve(logit_owner.size());
    for (uint64_t id : logit_owner) {
      const Active& a = *active_.at(id);
      model::DeviceSampleRow r;
      r.params = &a.sampler.params();
      r.prompt = a.req.prompt.data();
      r.n_prompt = a.req.prompt.size();
      r.generated = a.tokens.data() + a.req.prompt.size();
      r.n_generated = a.tokens.size() - a.req.prompt.size();
      r.seed = a.device_seed;
      r.step = static_cast<uint64_t>(a.n_generated);
      rows.push_back(r);
    }
    st = model_.forward_sample(batch, kv_, valid_.get(), rows, sampled, opts_.forward);
  } else {
    st = model_.forward(batch, kv_, logits, opts_.forward);
  }
  if (!st.ok()) {
    std::set<uint64_t> ids;
    for (const auto& ch : chunks) ids.insert(ch.id);
    for (uint64_t id : ids) finish(id, FinishReason::kError, st, {});
    return true;
  }
  for (const auto& ch : chunks)
    if (auto it = active_.find(ch.id); it != active_.end()) it->second->computed += ch.n_tokens;
  const int64_t rows = model_.head_rows();
  for (size_t r = 0; r < logit_owner.size(); ++r) {
    const uint64_t id = logit_owner[r];
    auto it = active_.find(id);
    if (it == active_.end()) continue;
    Active& a = *it->second;
    Result<SampleResult> res = SampleResult{};
    if (device_greedy) {
      if (greedy_ids[r] < 0)
        res = error(ErrorCode::kNumericalError, "non-finite logits (NaN/Inf) among the valid ids");
      else
        res = SampleResult{greedy_ids[r], greedy_lp[r], {}};
    } else if (device_sample) {
      auto& d = sampled[r];
      if (d.status == 1)
        res = error(ErrorCode::kNumericalError, "non-finite logits (NaN/Inf) among the valid ids");
      else if (d.status != 0 || d.id < 0)
        res = error(ErrorCode::kInternal, "no valid token to sample");
      else
        res = SampleResult{d.id, d.logprob, std::move(d.top)};
    } else {
      std::span<float> row(logits.data() + r * rows, rows);
      std::span<const int32_t> prompt(a.req.prompt);
      std::span<const int32_t> gen(a.tokens.data() + a.req.prompt.size(), a.tokens.size() - a.req.prompt.size());
      res = a.sampler.sample(row, prompt, gen);
    }
    if (!res.ok()) {
      Status err = res.status();
      if (err.code() == ErrorCode::kNumericalError)
        err = Status(err.code(), "generation step " + std::to_string(a.n_generated) + ": " + err.message());
      finish(id, FinishReason::kError, err, {});
      continue;
    }
    TokenEvent ev;
    ev.id = res.value().id;
    ev.sample = std::move(res.value());
    a.tokens.push_back(ev.id);
    a.n_generated++;
    if (!a.req.ignore_eos && a.req.stop_ids.count(ev.id)) {
      finish(id, FinishReason::kStop, Status(), std::move(ev));
    } else if (a.n_generated >= a.req.max_tokens ||
               static_cast<int64_t>(a.tokens.size()) >= opts_.ctx_size) {
      finish(id, FinishReason::kLength, Status(), std::move(ev));
    } else if (a.cb) {
      a.cb(ev);
    }
  }
  return true;
}

}  // namespace ballast::engine
