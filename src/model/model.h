// The model interface every architecture implements, and the batch it consumes.
// A batch holds tokens of several sequences (prefill chunks and decode steps mixed).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "model/config.h"
#include "model/weights.h"

namespace ballast::model {

struct Batch {
  std::vector<int32_t> tokens;       // (n_tokens,)
  std::vector<int32_t> positions;    // (n_tokens,) absolute position in its sequence
  std::vector<int32_t> seqs;         // (n_tokens,) KV cache sequence id
  std::vector<uint8_t> want_logits;  // (n_tokens,) 1: return this token's logits
  void add(int32_t tok, int32_t pos, int32_t seq, bool logits) {
    tokens.push_back(tok);
    positions.push_back(pos);
    seqs.push_back(seq);
    want_logits.push_back(logits ? 1 : 0);
  }
  size_t size() const { return tokens.size(); }
};

// One logits row's sampling request for a device sampler (the engine's Sampler chain run
// where the logits are).
struct DeviceSampleRow {
  const engine::SamplingParams* params = nullptr;
  const int32_t* prompt = nullptr;  // penalty context: prompt ids
  size_t n_prompt = 0;
  const int32_t* generated = nullptr;
  size_t n_generated = 0;
  uint64_t seed = 0;  // per request; the draw hashes (seed, step)
  uint64_t step = 0;  // tokens generated so far
};
struct DeviceSampleResult {
  int32_t id = -1;
  float logprob = 0;
  int status = 0;  // 0 ok, 1 non-finite valid logit, 2 no valid token
  std::vector<std::pair<int32_t, float>> top;
};

struct ForwardOptions {
  bool check_numerics = false;  // check every layer's output; name the first non-finite one
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const WeightSet& weights() const = 0;
  virtual int64_t embedding_rows() const = 0;
  virtual int64_t head_rows() const = 0;   // logits per token (== embedding rows when tied)
  virtual bool tied() const = 0;
  engine::KvShape kv_shape() const {
    const auto& c = config();
    return {c.n_layers, c.n_kv_heads, c.head_dim};
  }
  // Runs the batch; logits: (number of want_logits tokens, head_rows()) in batch order.
  // Every token id is bounds-checked against the embedding (kInvalidTokenId, never read).
  virtual Status forward(const Batch& batch, engine::KvCache& kv, std::vector<float>& logits,
                         const ForwardOptions& opts) = 0;
  // Device models keep K/V in device memory: the engine's KvCache then only counts blocks.
  virtual bool host_kv() const { return true; }
  // Frees what the model holds for a finished or cancelled sequence (device KV blocks).
  virtual void release_sequence(int32_t seq) {}
  // Optional device fast path for plain greedy rows: ids and log-probs of the
  // want_logits tokens in batch order, computed where the logits are (only ids cross the
  // bus). ids[r] == -1: row r had a NaN/Inf logit among the valid ids.
  virtual bool has_device_greedy() const { return false; }
  virtual Status forward_greedy(const Batch& batch, engine::KvCache& kv, const std::vector<uint8_t>* valid,
                                std::vector<int32_t>& ids, std::vector<float>& logprobs, const ForwardOptions& opts) {
    return error(ErrorCode::kUnsupported, "forward_greedy: not supported by this model");
  }
  // Optional device sampler: the full sampling chain (mask, bias, penalties, temperature,
  // top-k/top-p/min-p, seeded draw, top logprobs) for every want_logits row, in batch order.
  virtual bool has_device_sampler() const { return false; }
  virtual Status forward_sample(const Batch& batch, engine::KvCache& kv, const std::vector<uint8_t>* valid,
                                const std::vector<DeviceSampleRow>& rows, std::vector<DeviceSampleResult>& out,
                                const ForwardOptions& opts) {
    return error(ErrorCode::kUnsupported, "forward_sample: not supported by this model");
  }
  // Grows embedding/head to `rows` rows with the mean of existing rows (--resize-embeddings).
  virtual Status resize_embeddings(int64_t rows) = 0;
  ThreadPool& pool() { return *pool_; }
  void set_pool(std::shared_ptr<ThreadPool> p) { pool_ = std::move(p); }

 protected:
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace ballast::model
