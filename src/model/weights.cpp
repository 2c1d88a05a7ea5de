// WeightSet lookups with shape checks.
#include "model/weights.h"

#include "backend/cpu/quant.h"

namespace ballast::model {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

cpu::WeightView Weight::view() const {
  cpu::WeightView v;
  v.dtype = dtype;
  v.rows = shape.empty() ? 1 : shape[0];
  v.cols = v.rows ? n_elements() / v.rows : 0;
  v.data = data;
  return v;
}

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
  BALLAST_ASSIGN_OR_RETURN(const Weight* w, get(name, {n}));
  std::vector<float> out(n);
  cpu::dequantize_row(w->dtype, w->data, out.data(), n);
  return out;
}

}  // namespace ballast::model
