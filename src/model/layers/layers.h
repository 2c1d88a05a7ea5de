// What the architecture files share: RoPE tables, the embedding/LM-head binding (tied or
// not), and the per-layer tensor name. Everything else is ops (backend/ops.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/status.h"
#include "model/binder.h"
#include "model/config.h"
#include "model/model.h"

namespace ballast::model {

// Inverse frequencies (rot_dim/2,) with the config's scaling applied (LongRoPE: the short
// factors, the table of sequences within the original context).
std::vector<float> rope_inv_freq(const RopeParams& p, int64_t rot_dim);
// The backend's table for these parameters: rope_inv_freq, and for LongRoPE also the long
// factors' frequencies (sequences longer than original_max_pos) and the attention factor on cos/sin.
// Errors when a factor list does not hold rot_dim/2 entries.
Result<backend::RopeTable> rope_table(const RopeParams& p, int64_t rot_dim);

// "model.layers.<l>.<suffix>": the HF name of a layer's tensor.
inline std::string layer_name(int64_t l, const char* suffix) {
  return "model.layers." + std::to_string(l) + "." + suffix;
}

// A decoder-only model's embedding and LM head: binds `emb_name` (rows, hidden) and
// `head_name` unless tied (HF ties when the config says so, even if a checkpoint also
// saved the head), and sets embedding_rows/head_rows/tied.
class DecoderModel : public Model {
 public:
  using Model::Model;

 protected:
  Status bind_embeddings(Binder& b, const std::string& emb_name, const std::string& head_name);
  Status grow_embeddings(WeightSet& ws, int64_t rows) override;
  backend::WeightId emb_ = backend::kNoWeight, head_ = backend::kNoWeight;
  std::string emb_name_, head_name_;
};

// The registry's factory for a model class.
template <class M>
std::unique_ptr<Model> create_model(ModelConfig cfg) {
  return std::make_unique<M>(std::move(cfg));
}

}  // namespace ballast::model
