// Shared architecture helpers; see layers.h.
#include "model/layers/layers.h"

#include <cmath>

namespace ballast::model {

namespace {
// LongRoPE divides each pair's frequency by its factor (a list shorter than rot_dim/2 is an
// error reported by rope_table; missing entries leave the frequency as is).
std::vector<float> longrope_inv_freq(const RopeParams& p, int64_t rot_dim, const std::vector<double>& factors) {
  std::vector<float> inv(rot_dim / 2);
  for (int64_t i = 0; i < rot_dim / 2; ++i) {
    const double f = 1.0 / std::pow(p.theta, static_cast<double>(2 * i) / static_cast<double>(rot_dim));
    inv[i] = static_cast<float>(i < static_cast<int64_t>(factors.size()) ? f / factors[i] : f);
  }
  return inv;
}
}  // namespace

Result<backend::RopeTable> rope_table(const RopeParams& p, int64_t rot_dim) {
  backend::RopeTable t;
  t.inv_freq = rope_inv_freq(p, rot_dim);
  if (p.scaling != RopeScaling::kLongrope) return t;
  const size_t n = static_cast<size_t>(rot_dim / 2);
  if (p.short_factor.size() != n || p.long_factor.size() != n)
    return error(ErrorCode::kFormatError, "longrope: short_factor has " + std::to_string(p.short_factor.size()) +
                                              " and long_factor " + std::to_string(p.long_factor.size()) +
                                              " entries; the " + std::to_string(rot_dim) + " rotary dims need " +
                                              std::to_string(n));
  t.inv_freq_long = longrope_inv_freq(p, rot_dim, p.long_factor);
  t.long_after = static_cast<int64_t>(p.original_max_pos);
  t.scale = static_cast<float>(p.attention_factor);
  return t;
}

std::vector<float> rope_inv_freq(const RopeParams& p, int64_t rot_dim) {
  if (p.scaling == RopeScaling::kLongrope) return longrope_inv_freq(p, rot_dim, p.short_factor);
  std::vector<float> inv(rot_dim / 2);
  for (int64_t i = 0; i < rot_dim / 2; ++i) {
    double f = 1.0 / std::pow(p.theta, static_cast<double>(2 * i) / static_cast<double>(rot_dim));
    if (p.scaling == RopeScaling::kLinear) {
      f /= p.factor;
    } else if (p.scaling == RopeScaling::kLlama3) {
      const double pi = 3.14159265358979323846;
      const double low_wl = p.original_max_pos / p.low_freq_factor;
      const double high_wl = p.original_max_pos / p.high_freq_factor;
      const double wl = 2 * pi / f;
      if (wl > low_wl) {
        f /= p.factor;
      } else if (wl >= high_wl) {
        double smooth = (p.original_max_pos / wl - p.low_freq_factor) /
                        (p.high_freq_factor - p.low_freq_factor);
        f = (1 - smooth) * f / p.factor + smooth * f;
      }
    }
    inv[i] = static_cast<float>(f);
  }
  return inv;
}

Status DecoderModel::bind_embeddings(Binder& b, const std::string& emb_name, const std::string& head_name) {
  const int64_t H = cfg_.hidden;
  emb_name_ = emb_name;
  head_name_ = head_name;
  BALLAST_ASSIGN_OR_RETURN(emb_rows_, b.rows_of(emb_name));
  BALLAST_ASSIGN_OR_RETURN(emb_, b.matrix(emb_name, emb_rows_, H));
  tied_ = cfg_.tie_embeddings || (!b.random() && !b.has(head_name));
  if (tied_) {
    head_ = emb_;
    head_rows_ = emb_rows_;
    return Status();
  }
  BALLAST_ASSIGN_OR_RETURN(head_rows_, b.rows_of(head_name));
  BALLAST_ASSIGN_OR_RETURN(head_, b.matrix(head_name, head_rows_, H));
  return Status();
}

Status DecoderModel::grow_embeddings(WeightSet& ws, int64_t rows) {
  BALLAST_RETURN_IF_ERROR(ws.grow_rows(emb_name_, rows));
  if (!tied_) BALLAST_RETURN_IF_ERROR(ws.grow_rows(head_name_, rows));
  return Status();
}

}  // namespace ballast::model
