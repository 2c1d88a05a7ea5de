// The model interface: one architecture instance, bound onto a backend, whose forward
// pass is written once as backend ops. The engine hands it step plans; it never sees
// which backend runs them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"

namespace ballast::model {

class Binder;

class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return cfg_; }
  int64_t embedding_rows() const { return emb_rows_; }
  int64_t head_rows() const { return head_rows_; }  // logits per token (== embedding rows when tied)
  bool tied() const { return tied_; }
  // K/V geometry of the self-attention cache (the engine sizes its blocks from it).
  virtual backend::KvLayout kv_layout() const {
    return {cfg_.n_layers, cfg_.n_kv_heads, cfg_.head_dim};
  }
  // Declares and uploads every weight through the binder (names, shapes, packing).
  virtual Status bind(Binder& b) = 0;
  // The forward pass: embeddings -> layers -> logits, as ops.
  virtual Status forward(backend::Ops& o) const = 0;
  // Encoder-decoders: the encoder pass of an encode step (plan.encode): whole inputs ->
  // encoder layers -> every decoder layer's cross-attention K/V, stored in the KV pool.
  virtual bool encoder_decoder() const { return false; }
  virtual Status encode(backend::Ops& o) const {
    return error(ErrorCode::kUnsupported, cfg_.source_arch + " has no encoder");
  }
  // The decoder's first input (T5's decoder_start_token_id); encoder-decoders only.
  int64_t decoder_start() const { return cfg_.decoder_start_id.value_or(0); }

  // --resize-embeddings: grows the embedding (and an untied head) in `ws` to `rows` rows
  // (new rows: the mean of the others). Bind again afterwards.
  virtual Status grow_embeddings(WeightSet& ws, int64_t rows) {
    return error(ErrorCode::kUnsupported, "--resize-embeddings is not supported by " + cfg_.source_arch);
  }

  // LongRoPE: a sequence whose K/V were computed while it held at most this many tokens is
  // recomputed once it grows past it (its frequency table changes there); 0: never.
  virtual int64_t recompute_after() const { return 0; }

  // Runs one step on the bound backend (forward + logits chain).
  Status step(const backend::StepPlan& plan, const backend::LogitsRequest& req, const backend::StepOptions& opts,
              backend::StepResult& out) {
    backend::StepOptions o = opts;
    if (plan.encode) {
      o.forward_id = reinterpret_cast<const char*>(this) + 1;
      return backend_->run(plan, [this](backend::Ops& ops) { return encode(ops); }, req, o, out);
    }
    o.forward_id = this;
    return backend_->run(plan, [this](backend::Ops& ops) { return forward(ops); }, req, o, out);
  }
  backend::Backend& backend() { return *backend_; }
  void set_backend(std::shared_ptr<backend::Backend> b) { backend_ = std::move(b); }

  explicit Model(ModelConfig cfg) : cfg_(std::move(cfg)) {}

 protected:
  ModelConfig cfg_;
  std::shared_ptr<backend::Backend> backend_;
  int64_t emb_rows_ = 0, head_rows_ = 0;
  bool tied_ = true;
};

}  // namespace ballast::model
