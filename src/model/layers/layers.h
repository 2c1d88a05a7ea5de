// Building blocks shared by the architecture files: RoPE tables, embedding gather,
// batched attention over the KV cache, numerics checks, embedding resize.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/cpu/ops.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "engine/kv_cache.h"
#include "model/config.h"
#include "model/model.h"
#include "model/weights.h"

namespace ballast::model {

// Inverse frequencies (rot_dim/2,) with the config's scaling applied.
std::vector<float> rope_inv_freq(const RopeParams& p, int64_t rot_dim);

// Applies RoPE in place to every token's heads. x: (n_tokens, n_heads, head_dim).
void apply_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                const std::vector<int32_t>& positions, const std::vector<float>& inv_freq,
                RopeLayout layout, ThreadPool& pool);

// x: (n_tokens, hidden) = scale * E[tokens]. Ids outside [0, rows) are rejected before
// any read (kInvalidTokenId naming id and position).
Status embed_tokens(const Weight& emb, const std::vector<int32_t>& tokens, float scale, float* x,
                    ThreadPool& pool);

// Writes k, v of each token into its sequence's cache rows and computes causal attention.
// q: (n_tokens, n_heads*head_dim); k, v: (n_tokens, n_kv*head_dim); out like q.
// Tokens of one sequence must be consecutive positions in batch order.
Status attend(const Batch& batch, int64_t layer, const float* q, const float* k, const float* v,
              engine::KvCache& kv, const cpu::AttentionParams& ap, float* out, ThreadPool& pool);

// y (n, w.rows) = x (n, w.cols) @ w^T (+ bias).
void linear(const Weight& w, const float* x, int64_t n, float* y, ThreadPool& pool,
            const std::vector<float>* bias = nullptr);

// Non-finite check of (n_tokens, width) activations, naming the layer and position.
Status check_finite(const float* x, int64_t n_tokens, int64_t width, const std::string& where,
                    const Batch& batch);

// Gathers the rows of x (n_tokens, width) whose want_logits flag is set.
std::vector<float> select_logit_rows(const float* x, const Batch& batch, int64_t width);

// Replaces `name` (rows, cols) with an owned f32 copy grown to new_rows; new rows are
// the mean of the existing rows.
Status grow_rows(WeightSet& ws, const std::string& name, int64_t new_rows);

}  // namespace ballast::model

namespace ballast::model {

// What every decoder architecture shares: config, weights, the embedding and the
// (possibly tied) LM head, and --resize-embeddings. Subclasses implement init() (bind
// their layer weights; called again after a resize) and forward().
class DecoderModel : public Model {
 public:
  DecoderModel(ModelConfig cfg, std::shared_ptr<WeightSet> ws) : cfg_(std::move(cfg)), ws_(std::move(ws)) {}
  virtual Status init() = 0;

  const ModelConfig& config() const override { return cfg_; }
  const WeightSet& weights() const override { return *ws_; }
  int64_t embedding_rows() const override { return emb_->shape[0]; }
  int64_t head_rows() const override { return head_->shape[0]; }
  bool tied() const override { return tied_; }
  Status resize_embeddings(int64_t rows) override;

 protected:
  // Binds model.embed_tokens.weight and lm_head.weight (HF ties when the config says
  // so, even if a checkpoint also saved lm_head), checking both are (rows, hidden).
  Status bind_embeddings();
  // Final norm on the rows that want logits, then the head: logits (m, head_rows()).
  void head_logits(const float* x, const Batch& b, const std::vector<float>& final_norm,
                   std::vector<float>& logits);

  ModelConfig cfg_;
  std::shared_ptr<WeightSet> ws_;
  const Weight* emb_ = nullptr;
  const Weight* head_ = nullptr;
  bool tied_ = true;
};

// The registry's factory for a DecoderModel subclass: construct, then bind weights.
template <class M>
Result<std::unique_ptr<Model>> create_decoder(ModelConfig cfg, std::shared_ptr<WeightSet> ws) {
  auto m = std::make_unique<M>(std::move(cfg), std::move(ws));
  BALLAST_RETURN_IF_ERROR(m->init());
  return std::unique_ptr<Model>(std::move(m));
}

// "model.layers.<l>.<suffix>": the HF name of a layer's tensor.
inline std::string layer_name(int64_t l, const char* suffix) {
  return "model.layers." + std::to_string(l) + "." + suffix;
}

}  // namespace ballast::model
