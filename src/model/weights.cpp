// WeightSet lookups with shape checks.
#include "model/weights.h"

#include "core/quant.h"

namespace ballast::model {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}


size_t Weight::row_bytes() const { return ballast::row_bytes(dtype, static_cast<uint64_t>(cols())).value_or(0); }

const Weight* WeightSet::find(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : &it->second;
}

Result<const Weight*> WeightSet::get(const std::string& name, std::vector<int64_t> shape) const {
  const Weight* w = find(name);
  if (!w) return error(ErrorCode::kNotFound, origin + ": tensor '" + name + "' missing");
  if (w->shape != shape)
    return error(ErrorCode::kFormatError, origin + ": tensor '" + w->stored_as + "' has shape " +
                                              shape_str(w->shape) + ", config implies " +
                                              shape_str(shape));
  return w;
}

Result<std::vector<float>> WeightSet::get_f32(const std::string& name, int64_t n) const {
  return get_f32(name, std::vector<int64_t>{n});
}

Result<std::vector<float>> WeightSet::get_f32(const std::string& name, const std::vector<int64_t>& shape) const {
  BALLAST_ASSIGN_OR_RETURN(const Weight* w, get(name, shape));
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> out(n);
  ballast::dequantize_row(w->dtype, w->data, out.data(), n);
  return out;
}

Status WeightSet::grow_rows(const std::string& name, int64_t new_rows) {
  const Weight* w = find(name);
  if (!w) return error(ErrorCode::kNotFound, origin + ": tensor '" + name + "' missing");
  if (w->shape.size() != 2) return error(ErrorCode::kFormatError, origin + ": tensor '" + name + "' is not a matrix");
  const int64_t rows = w->shape[0], cols = w->shape[1];
  if (new_rows <= rows) return Status();
  auto buf = std::make_shared<std::vector<float>>(static_cast<size_t>(new_rows * cols));
  std::vector<double> mean(cols, 0.0);
  const size_t rb = row_bytes(w->dtype, static_cast<uint64_t>(cols)).value_or(0);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = buf->data() + r * cols;
    ballast::dequantize_row(w->dtype, w->data + r * rb, row, cols);
    for (int64_t c = 0; c < cols; ++c) mean[c] += row[c];
  }
  for (int64_t r = rows; r < new_rows; ++r)
    for (int64_t c = 0; c < cols; ++c) (*buf)[r * cols + c] = static_cast<float>(mean[c] / rows);
  Weight nw = *w;
  nw.dtype = DType::kF32;
  nw.shape = {new_rows, cols};
  nw.data = reinterpret_cast<const uint8_t*>(buf->data());
  keep(buf);
  add(std::move(nw));
  return Status();
}

}  // namespace ballast::model
