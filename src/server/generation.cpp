// Engine events -> text deltas for one API request (see generation.h).
#include "server/generation.h"

#include "core/log.h"

#include <algorithm>
#include <map>

namespace ballast::server {

std::string token_text(const tokenizer::Tokenizer& tok, int32_t id) {
  std::vector<int32_t> one{id};
  auto r = tok.decode_with(one, false, false);
  return r.ok() ? r.value() : std::string();
}

Generation::Generation(EngineLoop& loop, Metrics& metrics, const tokenizer::Tokenizer& tok, GenerationOptions opts,
                       Clock::time_point arrival)
    : loop_(loop), metrics_(metrics), tok_(tok), opts_(std::move(opts)), arrival_(arrival) {}

Generation::~Generation() { cancel_all(); }

void Generation::cancel_all() {
  for (auto& s : seqs_)
    if (!s.done && s.engine_id) {
      loop_.cancel(s.engine_id);
      s.done = true;
    }
}

MaybeError Generation::submit(std::vector<SequenceSpec> specs) {
  seqs_.resize(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    Seq& s = seqs_[i];
    s.choice = specs[i].choice_index;
    s.prompt = specs[i].prompt_index;
    s.leader = specs[i].leader;
    s.stop_ids = specs[i].req.stop_ids;
    s.dec = std::make_unique<tokenizer::StreamDecoder>(tok_, opts_.skip_special_tokens, opts_.clean_up_spaces);
    s.stop = std::make_unique<StopMatcher>(opts_.stop);
  }
  // All or nothing: a refused request leaves nothing queued behind it. Choices after a
  // prompt's first (its leader) fork from it (n > 1 / best_of share the prompt's blocks).
  std::map<int, int> leaders;  // prompt -> its leader's index in this batch
  std::vector<engine::GenerationRequest> reqs;
  std::vector<engine::Engine::Callback> cbs;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].leader) leaders[specs[i].prompt_index] = static_cast<int>(i);
    else if (auto l = leaders.find(specs[i].prompt_index); l != leaders.end()) specs[i].req.fork_of_index = l->second;
    reqs.push_back(std::move(specs[i].req));
    cbs.push_back([q = queue_, i](const engine::TokenEvent& ev) {
      {
        std::lock_guard<std::mutex> lk(q->mu);
        q->q.push_back(Event{i, ev, Clock::now()});
      }
      q->cv.notify_one();
    });
  }
  auto r = loop_.submit_all(std::move(reqs), std::move(cbs));
  if (!r.ok()) {
    for (auto& s : seqs_) s.done = true;
    if (r.status().code() != ErrorCode::kResourceExhausted) return from_status(r.status());
    ApiError e;
    e.status = 429;
    e.type = "server_overloaded";
    e.code = "queue_full";
    e.message = "the server is at capacity: " + r.status().message() + "; retry later";
    return e;
  }
  for (size_t i = 0; i < seqs_.size(); ++i) seqs_[i].engine_id = r.value()[i];
  return {};
}

int64_t Generation::cached_tokens() const {
  int64_t n = 0;
  for (const auto& s : seqs_)
    if (s.leader) n += s.cached;
  return n;
}

double Generation::cumulative_logprob(int choice) const {
  for (const auto& s : seqs_)
    if (s.choice == choice) return s.cum_logprob;
  return 0;
}

void Generation::handle(Seq& s, const engine::TokenEvent& ev, Clock::time_point t, ChoiceDelta& d, MaybeError& err) {
  s.cached = std::max(s.cached, ev.cached_tokens);
  if (ev.id >= 0) {
    s.tokens++;
    completion_tokens_++;
    metrics_.add_generated_tokens(1);
    if (!first_token_seen_) {
      first_token_seen_ = true;
      metrics_.ttft.observe(std::chrono::duration<double>(t - arrival_).count());
    } else if (s.tokens > 1) {
      metrics_.inter_token.observe(std::chrono::duration<double>(t - s.last).count());
    }
    s.last = t;
    const bool is_stop_token = ev.finish == engine::FinishReason::kStop && s.stop_ids.count(ev.id);
    if (!is_stop_token) {
      s.cum_logprob += ev.sample.logprob;  // the tokens a response's logprobs list
      if (opts_.logprobs) d.logprobs.push_back({ev.id, ev.sample.logprob, ev.sample.top});
      auto text = s.dec->push(ev.id);
      if (!text.ok()) {
        err = from_status(Status(ErrorCode::kInternal, "detokenizing id " + std::to_string(ev.id) + ": " +
                                                           text.status().message()));
        s.done = true;
        return;
      }
      auto out = s.stop->push(text.value());
      d.text += out.text;
      if (out.matched) {
        d.finish_reason = "stop";
        s.done = true;
        if (ev.finish == engine::FinishReason::kNone) loop_.cancel(s.engine_id);
        return;
      }
    }
  }
  if (ev.finish == engine::FinishReason::kNone) return;
  s.done = true;
  switch (ev.finish) {
    case engine::FinishReason::kStop:
    case engine::FinishReason::kLength: {
      auto tail = s.dec->finish();
      auto out = s.stop->push(tail.ok() ? tail.value() : std::string());
      d.text += out.text;
      if (!out.matched) d.text += s.stop->flush();
      d.finish_reason = out.matched || ev.finish == engine::FinishReason::kStop ? "stop" : "length";
      break;
    }
    case engine::FinishReason::kError:
      err = from_status(ev.status);
      break;
    default: {  // cancelled under us: the server is shutting down
      ApiError e = from_status(Status(ErrorCode::kCancelled, "the request was cancelled: the server is shutting down"));
      err = e;
    }
  }
}

MaybeError Generation::run(const std::function<bool(const ChoiceDelta&)>& on_delta,
                           const std::function<bool()>& client_gone) {
  auto pending = [&] {
    for (const auto& s : seqs_)
      if (!s.done) return true;
    return false;
  };
  auto last_check = Clock::now();
  while (pending()) {
    std::deque<Event> batch;
    {
      std::unique_lock<std::mutex> lk(queue_->mu);
      queue_->cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return !queue_->q.empty(); });
      batch.swap(queue_->q);
    }
    // Non-streaming requests write nothing until the end: look for a vanished client
    // every 100 ms even while tokens keep coming.
    if (client_gone && Clock::now() - last_check >= std::chrono::milliseconds(100)) {
      last_check = Clock::now();
      if (client_gone()) {
        cancel_all();
        return {};
      }
    }
    if (batch.empty()) continue;
    for (auto& e : batch) {
      Seq& s = seqs_[e.seq];
      if (s.done) continue;  // events after a stop-string cancel
      if (e.ev.has_prompt_logprobs && s.leader) {
        // The prompt's logprobs, for every choice of the prompt (its forks start later).
        ChoiceDelta pd;
        pd.has_prompt_logprobs = true;
        for (const auto& lp : e.ev.prompt_logprobs) pd.prompt_logprobs.push_back({lp.id, lp.logprob, lp.top});
        for (const auto& o : seqs_) {
          if (o.prompt != s.prompt) continue;
          pd.index = o.choice;
          if (!on_delta(pd)) {
            cancel_all();
            return {};
          }
        }
      }
      ChoiceDelta d;
      d.index = s.choice;
      MaybeError err;
      handle(s, e.ev, e.t, d, err);
      if (err) {
        log::warn("request.sequence_failed", err->message, {{"type", err->type}});
        cancel_all();
        return err;
      }
      if (d.text.empty() && d.logprobs.empty() && d.finish_reason.empty()) continue;
      if (!on_delta(d)) {
        cancel_all();
        return {};
      }
    }
  }
  return {};
}

}  // namespace ballast::server
