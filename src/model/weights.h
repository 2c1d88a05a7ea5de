// Weights by Hugging Face name, whatever file they came from. GGUF tensors are bound
// onto HF names by each architecture's table, so model code only knows HF names.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace ballast::model {

struct Weight {
  std::string name;              // HF name
  std::string stored_as;         // name in the file (GGUF name, or same)
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;    // outermost first: Linear (out, in), embedding (rows, hidden)
  const uint8_t* data = nullptr;
  int64_t n_elements() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  // As a matrix: rows = shape[0], cols = product of the rest.
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  int64_t cols() const { return rows() ? n_elements() / rows() : 0; }
  size_t row_bytes() const;
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
};

class WeightSet {
 public:
  void add(Weight w) { weights_[w.name] = std::move(w); }
  const Weight* find(const std::string& name) const;
  // The weight with exactly this shape, or an error naming the tensor and both shapes.
  Result<const Weight*> get(const std::string& name, std::vector<int64_t> shape) const;
  // A vector (norm weight, bias) converted to f32.
  Result<std::vector<float>> get_f32(const std::string& name, int64_t n) const;
  Result<std::vector<float>> get_f32(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::map<std::string, Weight>& all() const { return weights_; }
  // Replaces `name` (rows, cols) with an owned f32 copy grown to new_rows; new rows are
  // the mean of the existing rows (--resize-embeddings).
  Status grow_rows(const std::string& name, int64_t new_rows);
  // Keeps memory alive that weights point into (mmaps, owned buffers).
  void keep(std::shared_ptr<const void> p) { keepalive_.push_back(std::move(p)); }
  std::string origin;            // file or directory the weights came from
  bool gguf = false;             // GGUF layouts: linears are (out, in) even where HF stores Conv1D (in, out)

 private:
  std::map<std::string, Weight> weights_;
  std::vector<std::shared_ptr<const void>> keepalive_;
};

std::string shape_str(const std::vector<int64_t>& s);

}  // namespace ballast::model
