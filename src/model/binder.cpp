// Weight binding: lookups, shape checks, packing, upload.
#include "model/binder.h"

#include "core/quant.h"

namespace ballast::model {

Result<int64_t> Binder::rows_of(const std::string& name) const {
  if (random()) return random_rows_;
  const Weight* w = ws_->find(name);
  if (!w) return error(ErrorCode::kNotFound, ws_->origin + ": tensor '" + name + "' missing");
  if (w->shape.empty()) return error(ErrorCode::kFormatError, ws_->origin + ": tensor '" + w->stored_as + "' is a scalar");
  return w->shape[0];
}

Result<backend::WeightId> Binder::matrix(const std::vector<Part>& parts, int64_t cols) {
  backend::MatrixSource src;
  src.name = parts.empty() ? "" : parts[0].name;
  src.cols = cols;
  if (random()) {
    for (const auto& p : parts) src.rows += p.rows < 0 ? random_rows_ : p.rows;
    src.random = true;
    src.seed = seed_ * 1000003ull + ++seed_counter_;
    return be_.add_matrix(src);
  }
  auto owned = std::make_shared<std::vector<std::shared_ptr<std::vector<float>>>>();  // transposed copies
  src.keep = owned;
  for (const auto& p : parts) {
    const Weight* w = ws_->find(p.name);
    if (!w) return error(ErrorCode::kNotFound, ws_->origin + ": tensor '" + p.name + "' missing");
    const int64_t r = p.transposed ? (w->shape.size() == 2 ? w->shape[1] : -1) : (w->shape.empty() ? -1 : w->shape[0]);
    const int64_t c = p.transposed ? (w->shape.empty() ? -1 : w->shape[0]) : (w->shape.size() == 2 ? w->shape[1] : -1);
    if (w->shape.size() != 2 || c != cols || (p.rows >= 0 && r != p.rows)) {
      const std::vector<int64_t> want = p.transposed ? std::vector<int64_t>{cols, p.rows} : std::vector<int64_t>{p.rows, cols};
      return error(ErrorCode::kFormatError, ws_->origin + ": tensor '" + w->stored_as + "' has shape " +
                                                shape_str(w->shape) + ", config implies " + shape_str(want));
    }
    backend::MatrixPart mp{w->dtype, w->data, r};
    if (p.transposed) {
      // Conv1D stores (in, out): transpose once into an owned f32 (out, in) copy.
      auto buf = std::make_shared<std::vector<float>>(static_cast<size_t>(r * c));
      std::vector<float> row(r);
      const size_t rb = row_bytes(w->dtype, static_cast<uint64_t>(r)).value_or(0);
      for (int64_t i = 0; i < c; ++i) {
        dequantize_row(w->dtype, w->data + i * rb, row.data(), r);
        for (int64_t j = 0; j < r; ++j) (*buf)[j * c + i] = row[j];
      }
      owned->push_back(buf);
      mp = {DType::kF32, reinterpret_cast<const uint8_t*>(buf->data()), r};
    }
    src.parts.push_back(mp);
    src.rows += r;
  }
  auto id = be_.add_matrix(src);
  return id;
}

Result<backend::WeightId> Binder::vector(const std::string& name, int64_t n, float offset, float random_value) {
  std::vector<float> v;
  if (random()) {
    v.assign(n, random_value);
  } else {
    BALLAST_ASSIGN_OR_RETURN(v, ws_->get_f32(name, n));
  }
  for (auto& x : v) x += offset;
  return be_.add_vector(v);
}

Result<backend::WeightId> Binder::vectors(const std::vector<std::string>& names, const std::vector<int64_t>& sizes,
                                          float random_value) {
  std::vector<float> all;
  for (size_t i = 0; i < names.size(); ++i) {
    if (random()) {
      all.insert(all.end(), sizes[i], random_value);
      continue;
    }
    BALLAST_ASSIGN_OR_RETURN(auto v, ws_->get_f32(names[i], sizes[i]));
    all.insert(all.end(), v.begin(), v.end());
  }
  return be_.add_vector(all);
}

Result<std::vector<float>> Binder::values(const std::string& name, int64_t n) const {
  if (random()) return error(ErrorCode::kNotFound, "random weights: no tensor '" + name + "'");
  return ws_->get_f32(name, n);
}

Result<std::vector<float>> Binder::values(const std::string& name, const std::vector<int64_t>& shape) const {
  if (random()) return error(ErrorCode::kNotFound, "random weights: no tensor '" + name + "'");
  return ws_->get_f32(name, shape);
}

}  // namespace ballast::model
