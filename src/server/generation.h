// One API request's generation: n sequences per prompt submitted to the engine thread,
// their token events turned into text deltas on the HTTP thread (UTF-8-safe streaming
// decode, stop strings held back until resolved, logprobs), with cancellation when the
// client goes away. Shared by /v1/completions and /v1/chat/completions.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/engine_loop.h"
#include "server/metrics.h"
#include "server/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace ballast::server {

struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

// Text (and logprobs) that became final for one choice.
struct ChoiceDelta {
  int index = 0;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::string finish_reason;  // empty until the choice ends ("stop", "length")
  // Once per choice, before its first text, when prompt logprobs were asked for: prompt
  // tokens 1.. of the choice's prompt (token 0 has none).
  bool has_prompt_logprobs = false;
  std::vector<TokenLogprob> prompt_logprobs;
};

struct SequenceSpec {
  engine::GenerationRequest req;
  int choice_index = 0;
  int prompt_index = 0;
  // The first sequence of its prompt: it prefills the prompt (and computes its logprobs);
  // the prompt's other sequences fork from it (engine::GenerationRequest::fork_of).
  bool leader = true;
};

struct GenerationOptions {
  std::vector<std::string> stop;
  bool skip_special_tokens = true;
  bool logprobs = false;
  bool clean_up_spaces = false;  // transformers' clean_up_tokenization on the text (default: lossless)
};

class Generation {
 public:
  using Clock = std::chrono::steady_clock;
  Generation(EngineLoop& loop, Metrics& metrics, const tokenizer::Tokenizer& tok, GenerationOptions opts,
             Clock::time_point arrival);
  ~Generation();

  // Submits every sequence; on a full queue nothing stays submitted (429).
  MaybeError submit(std::vector<SequenceSpec> seqs);
  // Delivers deltas as they become final until every choice has finished. on_delta
  // returns false when the client is gone; then (or when client_gone()) every
  // sequence is cancelled and run() returns. Returns an error when a sequence failed.
  MaybeError run(const std::function<bool(const ChoiceDelta&)>& on_delta, const std::function<bool()>& client_gone);
  void cancel_all();

  int64_t completion_tokens() const { return completion_tokens_; }
  size_t choices() const { return seqs_.size(); }
  // Prompt tokens served from the prefix cache, counted once per prompt (its leader's).
  int64_t cached_tokens() const;
  // Sum of the logprobs of the tokens a choice drew, its stop token excepted: the tokens
  // its logprobs list (best_of ranks by it).
  double cumulative_logprob(int choice) const;

 private:
  struct Event {
    size_t seq;
    engine::TokenEvent ev;
    Clock::time_point t;
  };
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Event> q;
  };
  struct Seq {
    uint64_t engine_id = 0;
    int choice = 0;
    int prompt = 0;
    bool leader = true;
    int64_t cached = 0;
    double cum_logprob = 0;
    std::set<int32_t> stop_ids;
    std::unique_ptr<tokenizer::StreamDecoder> dec;
    std::unique_ptr<StopMatcher> stop;
    bool done = false;
    int64_t tokens = 0;
    Clock::time_point last;
  };
  void handle(Seq& s, const engine::TokenEvent& ev, Clock::time_point t, ChoiceDelta& d, MaybeError& err);

  EngineLoop& loop_;
  Metrics& metrics_;
  const tokenizer::Tokenizer& tok_;
  GenerationOptions opts_;
  Clock::time_point arrival_;
  std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  std::vector<Seq> seqs_;
  int64_t completion_tokens_ = 0;
  bool first_token_seen_ = false;
};

// The text of one token for logprobs output (invalid UTF-8 kept as bytes by callers).
std::string token_text(const tokenizer::Tokenizer& tok, int32_t id);

}  // namespace ballast::server
