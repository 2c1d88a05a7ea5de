// Engine step loop: schedule -> build one batch -> forward -> sample -> stop checks.
#include "engine/engine.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <random>

#include "engine/prompt_logprobs.h"

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
      sched_([&] {
        // The engine bounds the queue at submission (exactly, net of cancellations);
        // the scheduler must never drop what the engine accepted.
        SchedulerLimits l = opts.limits;
        l.max_queue = INT64_MAX;
        return l;
      }()) {
  const int64_t want = opts.kv_blocks > 0 ? opts.kv_blocks : BlockManager::blocks_for(opts.ctx_size) * opts.limits.max_batch;
  auto blocks = model.backend().init_kv(model.kv_layout(), want);
  // The cache must be a function of the token prefix alone: not so for an encoder-decoder
  // (cross K/V of another input) or LongRoPE (tables chosen by the sequence's length).
  const bool cache = opts.prefix_cache && !model.encoder_decoder() && model.recompute_after() == 0;
  if (blocks.ok()) kv_ = BlockManager(std::min(blocks.value(), want), cache);
  else init_ = blocks.status();
  uniform_tokens_ = std::max<int64_t>(1, model.backend().uniform_step_tokens());
}

Result<uint64_t> Engine::submit(GenerationRequest req, Callback cb) {
  std::vector<GenerationRequest> reqs;
  std::vector<Callback> cbs;
  reqs.push_back(std::move(req));
  cbs.push_back(std::move(cb));
  auto r = submit_all(std::move(reqs), std::move(cbs));
  if (!r.ok()) return r.status();
  return r.value().front();
}

Result<std::vector<uint64_t>> Engine::submit_all(std::vector<GenerationRequest> reqs, std::vector<Callback> cbs) {
  if (!init_.ok()) return init_;
  for (const auto& req : reqs) {
    if (model_.encoder_decoder() && req.encoder.empty())
      return error(ErrorCode::kInvalidArgument, "the encoder input is empty");
    if (!model_.encoder_decoder() && !req.encoder.empty())
      return error(ErrorCode::kInvalidArgument, "an encoder input for a decoder-only model");
  }
  if (reqs.empty()) return std::vector<uint64_t>{};
  const std::string client = reqs.front().client;  // a copy: the requests are moved below
  const int64_t n = static_cast<int64_t>(reqs.size());
  const int64_t max_queue = opts_.limits.max_queue;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lk(mu_);
  // Contenders: clients with sequences in flight (waiting or running), and clients that
  // asked in the last few seconds (refused, or between requests), so a client that keeps
  // the queue full cannot win every race for the room its own sequences free up.
  for (auto it = recent_.begin(); it != recent_.end();)
    it = now - it->second > std::chrono::seconds(5) ? recent_.erase(it) : std::next(it);
  recent_[client] = now;
  std::set<std::string> clients;
  for (const auto& [c, k] : inflight_by_client_) clients.insert(c);
  for (const auto& [c, t] : recent_) clients.insert(c);
  const int64_t share = std::max<int64_t>(1, max_queue / static_cast<int64_t>(clients.size()));
  const int64_t mine = queued_by_client_.count(client) ? queued_by_client_[client] : 0;
  const int64_t total = static_cast<int64_t>(queued_.size());
  if (total + n > max_queue) {
    return error(ErrorCode::kResourceExhausted, "request queue full (" + std::to_string(total) + " of " +
                                                    std::to_string(max_queue) + " sequences waiting, this request needs " +
                                                    std::to_string(n) + ")");
  }
  if (clients.size() > 1 && mine + n > share && mine > 0)
    return error(ErrorCode::kResourceExhausted,
                 "this client already has " + std::to_string(mine) + " sequence(s) waiting and its share of the queue is " +
                     std::to_string(share) + " while " + std::to_string(clients.size() - 1) + " other client(s) wait");
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < reqs.size(); ++i) {
    uint64_t id = next_id_++;
    auto a = std::make_unique<Active>();
    a->req = std::move(reqs[i]);
    a->cb = i < cbs.size() ? std::move(cbs[i]) : Callback();
    a->seed = a->req.sampling.seed ? *a->req.sampling.seed : std::random_device{}() * 0x100000001ull ^ next_id_;
    a->tokens = a->req.prompt;
    if (a->req.constraint) a->constraint = a->req.constraint();
    // A fork names its leader by position in this batch (its id is known only now).
    if (a->req.fork_of_index >= 0 && a->req.fork_of_index < static_cast<int>(ids.size()))
      a->req.fork_of = ids[a->req.fork_of_index];
    inbox_.emplace_back(id, std::move(a));
    queued_[id] = client;
    queued_by_client_[client]++;
    inflight_by_client_[client]++;
    ids.push_back(id);
  }
  return ids;
}

void Engine::unqueue_locked(uint64_t id) {
  auto it = queued_.find(id);
  if (it == queued_.end()) return;
  auto c = queued_by_client_.find(it->second);
  if (c != queued_by_client_.end() && --c->second <= 0) queued_by_client_.erase(c);
  queued_.erase(it);
}

void Engine::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  cancels_.insert(id);
  unqueue_locked(id);  // a cancelled sequence no longer takes queue room
}

size_t Engine::queued() const {
  std::lock_guard<std::mutex> lk(mu_);
  return queued_.size();
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
    if (!a->req.encoder.empty()) a->enc_seq = next_seq_++;
    const uint64_t leader = a->req.fork_of;
    const std::string client = a->req.client;
    active_[id] = std::move(a);
    if (leader && active_.count(leader)) forks_.push_back(id);  // events keep prompt order
    else sched_.enqueue(id, client);  // queue bound enforced at submit
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
  ev.cached_tokens = it->second->cached_tokens;
  {
    std::lock_guard<std::mutex> lk(mu_);
    unqueue_locked(id);
    auto c = inflight_by_client_.find(it->second->req.client);
    if (c != inflight_by_client_.end() && --c->second <= 0) inflight_by_client_.erase(c);
  }
  kv_.release(it->second->seq);
  if (it->second->enc_seq >= 0) kv_.release(it->second->enc_seq);
  sched_.remove(id);
  forks_.erase(std::remove(forks_.begin(), forks_.end(), id), forks_.end());
  active_.erase(it);
  if (cb) cb(ev);
}

void Engine::release_forks() {
  std::vector<uint64_t> keep;
  for (uint64_t id : forks_) {
    auto leader = active_.find(active_.at(id)->req.fork_of);
    // The leader's whole prompt is computed (its full blocks are named), or it is gone.
    if (leader == active_.end() ||
        leader->second->computed >= static_cast<int64_t>(leader->second->req.prompt.size()))
      sched_.enqueue(id, active_.at(id)->req.client);
    else
      keep.push_back(id);
  }
  forks_.swap(keep);
}

void Engine::attach_prefix(Active& a) {
  a.looked_up = true;
  if (!kv_.prefix_cache() || a.computed > 0 || kv_.has(a.seq) || a.req.prompt_logprobs >= 0) return;
  // At least the last token is computed (its logits start the generation), and at least
  // as many as a uniform step needs, so the rest is computed as a whole prefill would.
  const int64_t n = static_cast<int64_t>(a.tokens.size());
  const int64_t max_blocks = std::max<int64_t>(0, n - uniform_tokens_) / BlockManager::kBlockTokens;
  std::vector<int32_t> blocks = kv_.match(a.tokens, max_blocks);
  pc_queries_ += n;
  if (blocks.empty() || !kv_.share(a.seq, blocks).ok()) return;
  a.computed = a.cached_tokens = a.uniform_end = static_cast<int64_t>(blocks.size()) * BlockManager::kBlockTokens;
  a.computed_len = n;
  pc_hits_ += a.cached_tokens;
}

bool Engine::step() {
  drain_inbox();
  release_forks();
  if (active_.empty()) {
    n_waiting_ = n_running_ = 0;
    return false;
  }
  // LongRoPE changes tables when a sequence grows past the original context: a cache
  // computed before that is recomputed whole (as transformers' Phi-3 generate intends).
  if (const int64_t after = model_.recompute_after(); after > 0)
    for (auto& [id, a] : active_)
      if (a->computed > 0 && a->computed_len <= after && static_cast<int64_t>(a->tokens.size()) > after)
        a->computed = 0;
  auto item = [&](uint64_t id) {
    const auto& a = *active_.at(id);
    return SchedItem{id, a.computed, static_cast<int64_t>(a.tokens.size())};
  };
  auto can_admit = [&](uint64_t id) {
    // Room for the prompt plus the blocks every running request may still claim.
    const auto& a = *active_.at(id);
    return BlockManager::blocks_for(static_cast<int64_t>(a.tokens.size()) + 1) +
               BlockManager::blocks_for(static_cast<int64_t>(a.req.encoder.size())) <=
           kv_.free_blocks();
  };
  auto chunks = sched_.schedule(item, can_admit);
  if (auto admitted = sched_.take_admitted(); !admitted.empty()) {
    std::lock_guard<std::mutex> lk(mu_);
    for (uint64_t id : admitted) unqueue_locked(id);
  }
  n_waiting_ = sched_.waiting() + forks_.size();
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
  if (model_.encoder_decoder()) encode(chunks);
  // The step plan: tokens, positions, the block tables of the step's sequences.
  backend::StepPlan plan;
  backend::LogitsRequest req;
  req.valid = valid_.get();
  std::vector<uint64_t> logit_owner;  // request of each logits row
  std::vector<int32_t> step_seqs;
  std::vector<const Active*> step_active;
  // Rows of prompt positions scored for prompt logprobs: (request, target token).
  struct PromptRow {
    size_t logit_row;
    uint64_t id;
    int32_t target;
  };
  std::vector<PromptRow> prompt_rows;
  static const SamplingParams kGreedy = [] {
    SamplingParams p;
    p.temperature = 0;
    return p;
  }();
  for (auto& ch : chunks) {
    auto found = active_.find(ch.id);
    if (found == active_.end()) continue;  // its encoder failed
    Active& a = *found->second;
    if (!a.looked_up) attach_prefix(a);
    // The scheduler sized the chunk before the prefix was shared; prompt-logprob chunks
    // are kept short (each of their positions returns a whole logits row).
    ch.n_tokens = std::min<int64_t>(ch.n_tokens, static_cast<int64_t>(a.tokens.size()) - a.computed);
    if (a.req.prompt_logprobs >= 0 && !a.lps_sent) ch.n_tokens = std::min<int64_t>(ch.n_tokens, 64);
    Status st = kv_.reserve(a.seq, a.computed + ch.n_tokens);
    if (!st.ok()) {
      finish(ch.id, FinishReason::kError, st, {});
      continue;
    }
    const int32_t row = static_cast<int32_t>(step_seqs.size());
    step_seqs.push_back(a.seq);
    step_active.push_back(&a);
    plan.seq_len.push_back(static_cast<int32_t>(a.tokens.size()));
    for (int64_t i = 0; i < ch.n_tokens; ++i) {
      const int64_t pos = a.computed + i;
      const bool last = pos + 1 == static_cast<int64_t>(a.tokens.size());
      if (!last && a.req.prompt_logprobs >= 0 && pos + 1 < static_cast<int64_t>(a.req.prompt.size())) {
        prompt_rows.push_back({plan.logit_rows.size(), ch.id, a.tokens[pos + 1]});
        plan.logit_rows.push_back(static_cast<int32_t>(plan.tokens.size()));
        logit_owner.push_back(0);  // not sampled
        backend::SampleRow r;
        r.params = &kGreedy;
        req.rows.push_back(r);
      }
      if (last) {
        plan.logit_rows.push_back(static_cast<int32_t>(plan.tokens.size()));
        logit_owner.push_back(ch.id);
        backend::SampleRow r;
        r.params = &a.req.sampling;
        r.prompt = std::span<const int32_t>(a.req.prompt);
        r.generated = std::span<const int32_t>(a.tokens.data() + a.req.prompt.size(), a.tokens.size() - a.req.prompt.size());
        r.seed = a.seed;
        r.step = static_cast<uint64_t>(a.n_generated);
        if (a.constraint) {
          fill_constraint_mask(a);
          r.token_mask = &a.mask;
        }
        req.rows.push_back(r);
      }
      plan.tokens.push_back(a.tokens[pos]);
      plan.positions.push_back(static_cast<int32_t>(pos));
      plan.seq_row.push_back(row);
    }
  }
  if (plan.size() == 0) return true;
  kv_.fill_tables(step_seqs, plan);
  if (model_.encoder_decoder()) {
    // Cross-attention reads each sequence's encoder blocks.
    std::vector<int32_t> enc_seqs;
    for (const Active* a : step_active) {
      enc_seqs.push_back(a->enc_seq);
      plan.cross_len.push_back(static_cast<int32_t>(a->req.encoder.size()));
    }
    backend::StepPlan cross;
    kv_.fill_tables(enc_seqs, cross);
    plan.cross_tables = std::move(cross.block_tables);
    plan.cross_max_blocks = cross.max_blocks;
  }
  req.return_logits = !prompt_rows.empty();
  backend::StepResult result;
  Status st = model_.step(plan, req, opts_.forward, result);
  if (!st.ok()) {
    std::set<uint64_t> ids;
    for (const auto& ch : chunks) ids.insert(ch.id);
    for (uint64_t id : ids) finish(id, FinishReason::kError, st, {});
    return true;
  }
  for (const auto& ch : chunks)
    if (auto it = active_.find(ch.id); it != active_.end()) {
      Active& a = *it->second;
      // Only K/V computed the way a whole prefill computes them are shared (backend.h).
      if (a.uniform_end == a.computed && static_cast<int64_t>(plan.size()) >= uniform_tokens_)
        a.uniform_end += ch.n_tokens;
      a.computed += ch.n_tokens;
      a.computed_len = static_cast<int64_t>(a.tokens.size());
      kv_.commit(a.seq, a.tokens, a.uniform_end);
    }
  for (const auto& pr : prompt_rows) {
    auto it = active_.find(pr.id);
    if (it == active_.end()) continue;
    const size_t m = plan.logit_rows.size();
    const size_t V = m > 0 ? result.logits.size() / m : 0;
    auto sc = V == 0 ? Result<SampleResult>(error(ErrorCode::kInternal, "the backend returned no logits"))
                     : score_token(std::span<const float>(result.logits.data() + pr.logit_row * V, V), valid_.get(),
                                   pr.target, it->second->req.prompt_logprobs);
    if (!sc.ok()) finish(pr.id, FinishReason::kError, sc.status(), {});
    else it->second->prompt_lps.push_back(std::move(sc.value()));
  }
  for (size_t r = 0; r < logit_owner.size(); ++r) {
    const uint64_t id = logit_owner[r];
    if (id == 0) continue;  // a prompt-logprob row
    auto it = active_.find(id);
    if (it == active_.end()) continue;
    Active& a = *it->second;
    Result<SampleResult> res = SampleResult{};
    if (r >= result.rows.size()) res = error(ErrorCode::kInternal, "the backend returned no sample for a row");
    else if (!result.rows[r].status.ok()) res = result.rows[r].status;
    else res = std::move(result.rows[r].sample);
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
    ev.cached_tokens = a.cached_tokens;
    if (a.req.prompt_logprobs >= 0 && !a.lps_sent) {
      a.lps_sent = true;
      ev.has_prompt_logprobs = true;
      ev.prompt_logprobs = std::move(a.prompt_lps);
    }
    a.tokens.push_back(ev.id);
    a.n_generated++;
    const bool is_stop = !a.req.ignore_eos && a.req.stop_ids.count(ev.id);
    if (a.constraint && !is_stop && !a.constraint->accept(ev.id)) {
      finish(id, FinishReason::kError,
             error(ErrorCode::kInternal, "token " + std::to_string(ev.id) + " drawn outside the grammar mask"), {});
      continue;
    }
    if (is_stop || (a.constraint && a.constraint->must_end())) {
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

// The constraint's mask, with the stop ids allowed exactly when the output may end here.
void Engine::fill_constraint_mask(Active& a) {
  a.constraint->fill_mask(a.mask);
  if (valid_ && a.mask.size() < valid_->size()) a.mask.resize(valid_->size(), 0);
  const bool end = a.constraint->can_end();
  for (int32_t id : a.req.stop_ids)
    if (id >= 0 && id < static_cast<int32_t>(a.mask.size())) a.mask[id] = end;
}

void Engine::encode(const std::vector<ScheduledChunk>& chunks) {
  backend::StepPlan plan;
  plan.encode = true;
  std::vector<int32_t> seqs;
  std::vector<uint64_t> ids;
  for (const auto& ch : chunks) {
    Active& a = *active_.at(ch.id);
    if (a.encoded) continue;
    const int64_t n = static_cast<int64_t>(a.req.encoder.size());
    Status st = kv_.reserve(a.enc_seq, n);
    if (!st.ok()) {
      finish(ch.id, FinishReason::kError, st, {});
      continue;
    }
    const int32_t row = static_cast<int32_t>(seqs.size());
    seqs.push_back(a.enc_seq);
    ids.push_back(ch.id);
    for (int64_t i = 0; i < n; ++i) {
      plan.tokens.push_back(a.req.encoder[i]);
      plan.positions.push_back(static_cast<int32_t>(i));
      plan.seq_row.push_back(row);
    }
  }
  if (ids.empty()) return;
  kv_.fill_tables(seqs, plan);
  backend::StepResult result;
  Status st = model_.step(plan, backend::LogitsRequest{}, opts_.forward, result);
  for (uint64_t id : ids) {
    if (!st.ok()) finish(id, FinishReason::kError, Status(st.code(), "encoder: " + st.message()), {});
    else active_.at(id)->encoded = true;
  }
}

}  // namespace ballast::engine
