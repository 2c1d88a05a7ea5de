// Shared layer helpers; see layers.h.
#include "model/layers/layers.h"

#include <cmath>
#include <memory>

#include "backend/cpu/matmul.h"
#include "backend/cpu/quant.h"

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

void apply_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                const std::vector<int32_t>& positions, const std::vector<float>& inv_freq,
                RopeLayout layout, ThreadPool& pool) {
  const int64_t rot = static_cast<int64_t>(inv_freq.size()) * 2;
  const auto cl = layout == RopeLayout::kNeox ? cpu::RopeLayout::kNeox : cpu::RopeLayout::kInterleaved;
  pool.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
    std::vector<float> c(rot / 2), s(rot / 2);
    for (int64_t t = b; t < e; ++t) {
      // Angles in double so long positions keep precision (HF computes them in fp32
      // from an fp32 inv_freq; the difference is far below test tolerance).
      for (int64_t i = 0; i < rot / 2; ++i) {
        double a = static_cast<double>(positions[t]) * inv_freq[i];
        c[i] = static_cast<float>(std::cos(a));
        s[i] = static_cast<float>(std::sin(a));
      }
      cpu::rope(x + t * n_heads * head_dim, n_heads, head_dim, rot, c.data(), s.data(), cl);
    }
  });
}

Status embed_tokens(const Weight& emb, const std::vector<int32_t>& tokens, float scale, float* x,
                    ThreadPool& pool) {
  const auto view = emb.view();
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= view.rows)
      return error(ErrorCode::kInvalidTokenId,
                   "token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                       " is outside the embedding rows [0, " + std::to_string(view.rows) + ")");
  pool.parallel_for(static_cast<int64_t>(tokens.size()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* row = x + i * view.cols;
      cpu::embedding_row(view, tokens[i], row);  // checked above; it re-checks anyway
      if (scale != 1.0f) cpu::scale(row, scale, view.cols);
    }
  });
  return Status();
}

Status attend(const Batch& batch, int64_t layer, const float* q, const float* k, const float* v,
              engine::KvCache& kv, const cpu::AttentionParams& ap, float* out, ThreadPool& pool) {
  const int64_t n = static_cast<int64_t>(batch.size());
  const int64_t qw = ap.n_heads * ap.head_dim, kw = ap.n_kv_heads * ap.head_dim;
  int64_t i = 0;
  while (i < n) {
    // A run of consecutive tokens of one sequence.
    int64_t j = i + 1;
    while (j < n && batch.seqs[j] == batch.seqs[i] && batch.positions[j] == batch.positions[j - 1] + 1) ++j;
    const int32_t seq = batch.seqs[i];
    const int64_t pos0 = batch.positions[i];
    BALLAST_RETURN_IF_ERROR(kv.reserve(seq, pos0 + (j - i)));
    float* kc = kv.k(seq, layer);
    float* vc = kv.v(seq, layer);
    for (int64_t t = i; t < j; ++t) {
      std::copy(k + t * kw, k + (t + 1) * kw, kc + (pos0 + t - i) * kw);
      std::copy(v + t * kw, v + (t + 1) * kw, vc + (pos0 + t - i) * kw);
    }
    cpu::attention(q + i * qw, j - i, pos0, kc, vc, kw, out + i * qw, ap, &pool);
    i = j;
  }
  return Status();
}

void linear(const Weight& w, const float* x, int64_t n, float* y, ThreadPool& pool,
            const std::vector<float>* bias) {
  const auto view = w.view();
  cpu::matmul(view, x, n, y, pool);
  if (bias)
    for (int64_t t = 0; t < n; ++t) cpu::add(y + t * view.rows, y + t * view.rows, bias->data(), view.rows);
}

Status check_finite(const float* x, int64_t n_tokens, int64_t width, const std::string& where,
                    const Batch& batch) {
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t i = 0; i < width; ++i)
      if (!std::isfinite(x[t * width + i]))
        return error(ErrorCode::kNumericalError,
                     where + " produced a non-finite value (" + std::to_string(x[t * width + i]) +
                         ") at sequence position " + std::to_string(batch.positions[t]) +
                         ", element " + std::to_string(i) + "; try bf16/fp32 weights");
  return Status();
}

std::vector<float> select_logit_rows(const float* x, const Batch& batch, int64_t width) {
  std::vector<float> out;
  for (size_t t = 0; t < batch.size(); ++t)
    if (batch.want_logits[t]) out.insert(out.end(), x + t * width, x + (t + 1) * width);
  return out;
}

Status grow_rows(WeightSet& ws, const std::string& name, int64_t new_rows) {
  const Weight* w = ws.find(name);
  if (!w) return error(ErrorCode::kNotFound, "tensor '" + name + "' missing");
  const auto view = w->view();
  if (new_rows <= view.rows) return Status();
  auto buf = std::make_shared<std::vector<float>>(static_cast<size_t>(new_rows * view.cols));
  std::vector<double> mean(view.cols, 0.0);
  for (int64_t r = 0; r < view.rows; ++r) {
    float* row = buf->data() + r * view.cols;
    cpu::embedding_row(view, r, row);
    for (int64_t c = 0; c < view.cols; ++c) mean[c] += row[c];
  }
  for (int64_t r = view.rows; r < new_rows; ++r)
    for (int64_t c = 0; c < view.cols; ++c)
      (*buf)[r * view.cols + c] = static_cast<float>(mean[c] / view.rows);
  Weight nw = *w;
  nw.dtype = DType::kF32;
  nw.shape = {new_rows, view.cols};
  nw.data = reinterpret_cast<const uint8_t*>(buf->data());
  ws.keep(buf);
  ws.add(std::move(nw));
  return Status();
}

}  // namespace ballast::model

namespace ballast::model {

Status DecoderModel::resize_embeddings(int64_t rows) {
  BALLAST_RETURN_IF_ERROR(grow_rows(*ws_, "model.embed_tokens.weight", rows));
  if (!tied_) BALLAST_RETURN_IF_ERROR(grow_rows(*ws_, "lm_head.weight", rows));
  return init();
}

Status DecoderModel::bind_embeddings() {
  const int64_t H = cfg_.hidden;
  emb_ = ws_->find("model.embed_tokens.weight");
  if (!emb_) return error(ErrorCode::kNotFound, ws_->origin + ": tensor 'model.embed_tokens.weight' missing");
  const Weight* head = ws_->find("lm_head.weight");
  tied_ = head == nullptr || cfg_.tie_embeddings;
  head_ = tied_ ? emb_ : head;
  for (const Weight* w : {emb_, head_})
    if (w->shape.size() != 2 || w->shape[1] != H)
      return error(ErrorCode::kFormatError, ws_->origin + ": tensor '" + w->stored_as + "' has shape " +
                                                shape_str(w->shape) + ", expected (rows, " + std::to_string(H) + ")");
  return Status();
}

void DecoderModel::head_logits(const float* x, const Batch& b, const std::vector<float>& final_norm,
                               std::vector<float>& logits) {
  const int64_t H = cfg_.hidden;
  std::vector<float> sel = select_logit_rows(x, b, H);  // (m, H)
  const int64_t m = static_cast<int64_t>(sel.size()) / H;
  const float eps = static_cast<float>(cfg_.rms_eps);
  for (int64_t t = 0; t < m; ++t) cpu::rmsnorm(&sel[t * H], &sel[t * H], final_norm.data(), H, eps);
  logits.resize(m * head_rows());
  linear(*head_, sel.data(), m, logits.data(), *pool_);
}

}  // namespace ballast::model
