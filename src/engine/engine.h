// The step loop: scheduler + block manager -> a step plan -> the model (forward and the
// logits chain on its backend) -> stop checks. Driven by one thread (the
// CLI's, or the server's engine thread); requests come and go between steps.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/block_manager.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/token_constraint.h"
#include "model/model.h"

namespace ballast::engine {

enum class FinishReason { kNone, kStop, kLength, kError, kCancelled };
const char* finish_reason_name(FinishReason r);

struct GenerationRequest {
  std::vector<int32_t> prompt;        // validated ids (encoder-decoders: the decoder's start)
  std::vector<int32_t> encoder;       // encoder-decoders: the encoder input (validated ids)
  SamplingParams sampling;
  int64_t max_tokens = 16;
  bool ignore_eos = false;
  std::set<int32_t> stop_ids;         // eos ids + client stop_token_ids (validated)
  // >= 0: also report the logprob of every prompt token after the first (with this many
  // alternatives), computed during prefill; such a request never reads the prefix cache.
  int prompt_logprobs = -1;
  // A request id from an earlier submit with the same prompt (n > 1 / best_of): this one
  // waits until that one's prompt is computed, then shares its full blocks through the
  // prefix cache (the last partial block is recomputed, not copied) and so starts after it.
  uint64_t fork_of = 0;
  // Set by the caller instead of fork_of when the leader is submitted in the same
  // submit_all batch: the leader's index in that batch (-1: none).
  int fork_of_index = -1;
  ConstraintFactory constraint;       // structured output (null: none)
  std::string client;                 // who asked (a peer address): queue shares and admission turns
};

// One generated token, delivered to the request's callback on the engine thread.
struct TokenEvent {
  int32_t id = -1;
  SampleResult sample;
  FinishReason finish = FinishReason::kNone;  // set on the last event
  Status status;                              // error when finish == kError
  int64_t cached_tokens = 0;                  // prompt tokens whose K/V came from the prefix cache
  // First event of a prompt_logprobs request: prompt tokens 1.. (id = the prompt token).
  bool has_prompt_logprobs = false;
  std::vector<SampleResult> prompt_logprobs;
};

struct EngineOptions {
  SchedulerLimits limits;
  int64_t ctx_size = 4096;        // max tokens per sequence (prompt + generated)
  int64_t kv_blocks = 0;          // 0: ctx_size * max_batch worth
  // Share full KV blocks between requests with a common token prefix (block_manager.h).
  // Ignored (off) for encoder-decoders and LongRoPE models, whose cache is not a function
  // of the token prefix alone.
  bool prefix_cache = false;
  backend::StepOptions forward;
};

class Engine {
 public:
  using Callback = std::function<void(const TokenEvent&)>;
  Engine(model::Model& model, std::shared_ptr<const std::vector<uint8_t>> valid, EngineOptions opts);

  // Thread-safe. Returns the request id, or kResourceExhausted when the queue is full.
  Result<uint64_t> submit(GenerationRequest req, Callback cb);
  // Thread-safe. Queues all of them or none (kResourceExhausted): the queue holds at most
  // max_queue waiting sequences, and while other clients have sequences in flight (or
  // asked in the last few seconds) a client that already has sequences waiting may hold
  // only its share, max_queue / clients. Waiting
  // sequences that were cancelled no longer count.
  Result<std::vector<uint64_t>> submit_all(std::vector<GenerationRequest> reqs, std::vector<Callback> cbs);
  // Thread-safe; the request ends with FinishReason::kCancelled at the next step.
  void cancel(uint64_t id);
  // Runs one step; false when there was nothing to do.
  bool step();
  bool idle() const;

  size_t waiting() const;
  // Sequences submitted and not yet admitted to the batch, finished or cancelled.
  size_t queued() const;
  size_t running() const;
  const BlockManager& kv() const { return kv_; }
  // Why the engine cannot run (the backend could not allocate its KV pool), or ok.
  const Status& init_status() const { return init_; }
  const EngineOptions& options() const { return opts_; }
  bool prefix_cache() const { return kv_.prefix_cache(); }
  // Prefix-cache lookups so far, in prompt tokens: looked up and found. Thread-safe.
  int64_t prefix_queries() const { return pc_queries_; }
  int64_t prefix_hits() const { return pc_hits_; }

 private:
  struct Active {
    GenerationRequest req;
    Callback cb;
    std::vector<int32_t> tokens;  // prompt + generated
    int64_t computed = 0;
    int64_t computed_len = 0;  // tokens it held when its cache was last extended (LongRoPE)
    int64_t n_generated = 0;
    int32_t seq = 0;
    int32_t enc_seq = -1;  // encoder-decoders: the block-manager sequence of the cross K/V
    bool encoded = false;
    bool looked_up = false;     // the prefix cache was consulted (first schedule)
    int64_t cached_tokens = 0;  // prompt positions shared from the prefix cache
    int64_t uniform_end = 0;    // positions [0, this) computed in uniform steps: cacheable
    bool lps_sent = false;      // prompt logprobs delivered
    std::vector<SampleResult> prompt_lps;  // (computed prompt positions - 1) so far
    uint64_t seed = 0;  // the request's seed (or a random one): draws hash (seed, step)
    std::unique_ptr<TokenConstraint> constraint;  // from req.constraint
    std::vector<uint8_t> mask;                    // its token mask for the next draw
  };
  // Shares the longest cached prefix of a request that has no blocks yet.
  void attach_prefix(Active& a);
  // Forks waiting for their leader's prompt: moved to the scheduler once it is cached.
  void release_forks();
  void finish(uint64_t id, FinishReason r, Status st, TokenEvent ev);
  // Runs the encode step for the scheduled requests whose encoder has not run; a request
  // whose encoder fails is finished with the error.
  void encode(const std::vector<ScheduledChunk>& chunks);
  void drain_inbox();
  void fill_constraint_mask(Active& a);
  void unqueue_locked(uint64_t id);

  model::Model& model_;
  std::shared_ptr<const std::vector<uint8_t>> valid_;
  EngineOptions opts_;
  BlockManager kv_;
  Status init_;
  Scheduler sched_;
  std::map<uint64_t, std::unique_ptr<Active>> active_;
  int32_t next_seq_ = 0;
  int64_t uniform_tokens_ = 1;  // backend::Backend::uniform_step_tokens()

  mutable std::mutex mu_;  // guards inbox_, cancels_, next_id_, counters
  std::vector<std::pair<uint64_t, std::unique_ptr<Active>>> inbox_;
  std::set<uint64_t> cancels_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::string> queued_;            // waiting sequences -> client
  std::map<std::string, int64_t> queued_by_client_;
  std::map<std::string, int64_t> inflight_by_client_;  // submitted and not finished
  std::map<std::string, std::chrono::steady_clock::time_point> recent_;  // last submission per client
  std::atomic<size_t> n_waiting_{0}, n_running_{0};
  std::atomic<int64_t> pc_queries_{0}, pc_hits_{0};
  std::vector<uint64_t> forks_;  // parked until their leader's prompt is computed
};

}  // namespace ballast::engine
