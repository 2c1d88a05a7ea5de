// Binds an architecture's weights onto a backend: looks tensors up by Hugging Face name
// (GGUF names were mapped at load), checks shapes, applies the packing the architecture
// declares (row-stacked fused q|k|v and gate|up, transposed Conv1D (in, out) storage) and
// uploads. Random mode (speed presets) makes every requested tensor random instead.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"

namespace ballast::model {

struct Part {
  std::string name;
  int64_t rows = -1;        // expected rows; -1: whatever the tensor has (embeddings)
  bool transposed = false;  // stored (cols, rows), as GPT-2's Conv1D: transposed at load
};

class Binder {
 public:
  // From loaded weights.
  Binder(std::shared_ptr<const WeightSet> ws, backend::Backend& be) : ws_(std::move(ws)), be_(be) {}
  // Random weights: matrices uniform with std 0.02, vectors constant; `rows` is the
  // embedding row count of the preset.
  Binder(backend::Backend& be, uint64_t seed, int64_t random_rows) : be_(be), seed_(seed), random_rows_(random_rows) {}

  bool random() const { return ws_ == nullptr; }
  // GGUF (and random) weights are (out, in) everywhere; HF Conv1D stores (in, out).
  bool conv1d_stored_out_in() const { return !ws_ || ws_->gguf; }
  // True when the file has the tensor (always false in random mode).
  bool has(const std::string& name) const { return ws_ && ws_->find(name); }
  // Rows of a tensor (random mode: the preset's embedding rows).
  Result<int64_t> rows_of(const std::string& name) const;

  // A (sum of part rows, cols) matrix from parts stacked by rows.
  Result<backend::WeightId> matrix(const std::vector<Part>& parts, int64_t cols);
  Result<backend::WeightId> matrix(const std::string& name, int64_t rows, int64_t cols) {
    return matrix(std::vector<Part>{{name, rows, false}}, cols);
  }
  // A (n) f32 vector; `offset` is added to every value (Gemma's 1 + w). Random mode:
  // every value is random_value (norm weights 1 - offset, biases 0).
  Result<backend::WeightId> vector(const std::string& name, int64_t n, float offset = 0.f, float random_value = 1.f);
  // Several vectors concatenated (fused q|k|v bias).
  Result<backend::WeightId> vectors(const std::vector<std::string>& names, const std::vector<int64_t>& sizes,
                                    float random_value = 0.f);
  // Host values of a small tensor (rope_freqs).
  Result<std::vector<float>> values(const std::string& name, int64_t n) const;
  Result<std::vector<float>> values(const std::string& name, const std::vector<int64_t>& shape) const;
  backend::Backend& backend() { return be_; }

 private:
  std::shared_ptr<const WeightSet> ws_;
  backend::Backend& be_;
  uint64_t seed_ = 0;
  int64_t random_rows_ = 0;
  uint64_t seed_counter_ = 0;
};

}  // namespace ballast::model
