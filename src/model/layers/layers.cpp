// Shared architecture helpers; see layers.h.
#include "model/layers/layers.h"

#include <cmath>

namespace ballast::model {

std::vector<float> rope_inv_freq(const RopeParams& p, int64_t rot_dim) {
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
