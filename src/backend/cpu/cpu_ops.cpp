// The ops of backend/ops.h on the CPU: fp32 activations on a stack of reusable buffers,
// executed as they are issued.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ops.h"

namespace ballast::cpu {
namespace {

// Writes one token's K and V rows (kw values each) at element offset `at` of the pools.
void store_kv_row(void* kc, void* vc, int64_t at, const float* k, const float* v, int64_t kw, bool f16) {
  if (f16) {
    f32_to_f16_row(k, static_cast<uint16_t*>(kc) + at, kw);
    f32_to_f16_row(v, static_cast<uint16_t*>(vc) + at, kw);
  } else {
    std::memcpy(static_cast<float*>(kc) + at, k, static_cast<size_t>(kw) * 4);
    std::memcpy(static_cast<float*>(vc) + at, v, static_cast<size_t>(kw) * 4);
  }
}

using backend::Tensor;

class CpuOps : public backend::Ops {
 public:
  CpuOps(CpuBackend& be, const backend::StepPlan& plan, const backend::StepOptions& opts)
      : be_(be), plan_(plan), opts_(opts), n_(static_cast<int64_t>(plan.size())), bufs_(be.tensor_storage()) {}

  Tensor embed(backend::WeightId table, float scale) override {
    const Matrix& m = be_.matrix(table);
    Tensor x = alloc(n_, m.cols);
    for (int64_t i = 0; i < n_; ++i)
      if (plan_.tokens[i] < 0 || plan_.tokens[i] >= m.rows) {
        fail(error(ErrorCode::kInvalidTokenId, "token id " + std::to_string(plan_.tokens[i]) + " at position " +
                                                   std::to_string(i) + " is outside the embedding rows [0, " +
                                                   std::to_string(m.rows) + ")"));
        return x;
      }
    gather_rows(m, plan_.tokens, scale, data(x));
    return x;
  }

  Tensor embed_positions(backend::WeightId table) override {
    const Matrix& m = be_.matrix(table);
    Tensor x = alloc(n_, m.cols);
    for (int64_t i = 0; i < n_; ++i)
      if (plan_.positions[i] < 0 || plan_.positions[i] >= m.rows) {
        fail(error(ErrorCode::kContextLengthExceeded, "position " + std::to_string(plan_.positions[i]) +
                                                          " is beyond the model's " + std::to_string(m.rows) +
                                                          " learned positions"));
        return x;
      }
    gather_rows(m, plan_.positions, 1.0f, data(x));
    return x;
  }

  Tensor norm(Tensor x, const backend::Norm& nm) override {
    Tensor y = alloc(x.rows, x.cols);
    if (!ok()) return y;
    const float* w = be_.vec(nm.w).data();
    const float* b = nm.b == backend::kNoWeight ? nullptr : be_.vec(nm.b).data();
    const float* in = data(x);
    float* out = data(y);
    be_.pool().parallel_for(x.rows, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        if (nm.kind == backend::NormKind::kRms) rmsnorm(out + t * x.cols, in + t * x.cols, w, x.cols, nm.eps);
        else layernorm(out + t * x.cols, in + t * x.cols, w, b, x.cols, nm.eps);
      }
    });
    return y;
  }

  Tensor linear(Tensor x, backend::WeightId w, backend::WeightId bias) override {
    Tensor y = alloc(x.rows, be_.rows(w));
    if (!ok()) return y;
    be_.matmul(w, data(x), x.rows, data(y));
    if (bias != backend::kNoWeight) add_bias(y, bias);
    return y;
  }

  void linear_add(Tensor x, backend::WeightId w, Tensor residual, backend::WeightId bias) override {
    backend::Ops::Scope s(*this);
    Tensor y = linear(x, w, bias);
    add(residual, y);
  }

  Tensor linear_glu(Tensor x, backend::WeightId gate_up, backend::Act act) override {
    const int64_t F = be_.rows(gate_up) / 2;
    Tensor y = alloc(x.rows, F);
    {
      backend::Ops::Scope s(*this);  // the (n, 2F) product is released before y is used
      Tensor gu = linear(x, gate_up, backend::kNoWeight);
      if (!ok()) return y;
      // Prompts: tokens split over the pool (the product is (n, 2F), too big for one core
      // to finish while the other waits); a decode token stays on this thread.
      auto rows = [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const float* g = data(gu) + t * 2 * F;  // [gate | up]
          float* o = data(y) + t * F;
          if (act == backend::Act::kSilu) {
            swiglu(o, g, g + F, F);
          } else if (act == backend::Act::kGeluTanh) {
            geglu_tanh(o, g, g + F, F);
          } else {
            std::memcpy(o, g, static_cast<size_t>(F) * 4);
            apply_act(o, F, act);
            mul(o, o, g + F, F);
          }
        }
      };
      if (x.rows >= 4) be_.pool().parallel_for(x.rows, rows);
      else rows(0, x.rows);
    }
    return y;
  }

  Tensor activation(Tensor x, backend::Act act) override {
    Tensor y = alloc(x.rows, x.cols);
    if (!ok()) return y;
    std::memcpy(data(y), data(x), static_cast<size_t>(x.rows * x.cols) * 4);
    apply_act(data(y), x.rows * x.cols, act);
    return y;
  }

  void add(Tensor residual, Tensor y) override {
    if (!ok()) return;
    const int64_t cols = residual.cols;
    if (residual.rows >= 8) {
      be_.pool().parallel_for(residual.rows, [&](int64_t t0, int64_t t1) {
        cpu::add(data(residual) + t0 * cols, data(residual) + t0 * cols, data(y) + t0 * cols, (t1 - t0) * cols);
      });
    } else {
      cpu::add(data(residual), data(residual), data(y), residual.rows * cols);
    }
  }

  Tensor attention(Tensor qkv, const backend::AttentionSpec& a) override;
  void store_kv(Tensor kv, int layer) override;

  void logits(Tensor x, const backend::Norm& final_norm, backend::WeightId head, float softcap) override {
    if (!ok()) return;
    const int64_t m = static_cast<int64_t>(plan_.logit_rows.size()), H = x.cols;
    auto& out = be_.logits();
    out.assign(static_cast<size_t>(m * be_.rows(head)), 0.f);
    if (m == 0) return;
    backend::Ops::Scope s(*this);
    Tensor sel = alloc(m, H);
    for (int64_t r = 0; r < m; ++r)
      std::memcpy(data(sel) + r * H, data(x) + plan_.logit_rows[r] * H, static_cast<size_t>(H) * 4);
    Tensor h = norm(sel, final_norm);
    be_.matmul(head, data(h), m, out.data());
    if (softcap > 0) cpu::softcap(out.data(), softcap, static_cast<int64_t>(out.size()));
  }

  void check(Tensor x, int64_t layer) override {
    if (!ok() || !opts_.check_numerics) return;
    const float* p = data(x);
    for (int64_t t = 0; t < x.rows; ++t)
      for (int64_t i = 0; i < x.cols; ++i)
        if (!std::isfinite(p[t * x.cols + i])) {
          fail(error(ErrorCode::kNumericalError,
                     "layer " + std::to_string(layer) + " produced a non-finite value (" + std::to_string(p[t * x.cols + i]) +
                         ") at sequence position " + std::to_string(plan_.positions[t]) + ", element " +
                         std::to_string(i) + "; try bf16/fp32 weights"));
          return;
        }
  }

  Status status() const override { return status_; }

 protected:
  int64_t mark() const override { return top_; }
  void release(int64_t mark) override { top_ = mark; }

 private:
  Tensor alloc(int64_t rows, int64_t cols) {
    if (top_ == static_cast<int64_t>(bufs_.size())) bufs_.emplace_back();
    bufs_[top_].resize(static_cast<size_t>(rows * cols));
    return Tensor{static_cast<int32_t>(top_++), rows, cols};
  }
  float* data(Tensor t) { return bufs_[t.id].data(); }
  bool ok() const { return status_.ok(); }
  void fail(Status s) {
    if (status_.ok()) status_ = std::move(s);
  }

  void gather_rows(const Matrix& m, const std::vector<int32_t>& ids, float scale, float* out) {
    be_.pool().parallel_for(n_, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        // Find the part holding the row (embedding tables have one part).
        int64_t r = ids[i];
        for (const auto& p : m.parts) {
          if (r < p.rows) {
            embedding_row(p, r, out + i * m.cols);
            break;
          }
          r -= p.rows;
        }
        if (scale != 1.0f) cpu::scale(out + i * m.cols, scale, m.cols);
      }
    });
  }

  void add_bias(Tensor y, backend::WeightId bias) {
    const float* b = be_.vec(bias).data();
    for (int64_t t = 0; t < y.rows; ++t) cpu::add(data(y) + t * y.cols, data(y) + t * y.cols, b, y.cols);
  }

  static void apply_act(float* x, int64_t n, backend::Act act) {
    switch (act) {
      case backend::Act::kSilu: silu(x, n); break;
      case backend::Act::kGeluTanh: gelu_tanh(x, n); break;
      case backend::Act::kGeluErf: gelu_erf(x, n); break;
      case backend::Act::kRelu:
        for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.f);
        break;
    }
  }

  CpuBackend& be_;
  const backend::StepPlan& plan_;
  const backend::StepOptions& opts_;
  const int64_t n_;
  std::vector<std::vector<float>>& bufs_;  // tensor storage, a stack (Scope marks), kept across steps
  int64_t top_ = 0;
  Status status_;
};

Tensor CpuOps::attention(Tensor qkv, const backend::AttentionSpec& a) {
  const int64_t hd = a.head_dim, qw = a.n_heads * hd, kw = a.n_kv_heads * hd;
  Tensor out = alloc(n_, qw);
  if (!ok()) return out;
  const auto& kvl = be_.kv_layout();
  if (a.layer < 0 || a.layer >= kvl.n_layers || kw != kvl.row()) {
    fail(error(ErrorCode::kInternal, "attention: layer " + std::to_string(a.layer) + " does not match the KV pool"));
    return out;
  }
  const int64_t stride = a.cross ? qw : qw + 2 * kw;
  if (qkv.cols != stride) {
    fail(error(ErrorCode::kInternal, "attention: input has " + std::to_string(qkv.cols) + " columns, expected " +
                                         std::to_string(stride)));
    return out;
  }
  if (a.cross && plan_.cross_len.empty()) {
    fail(error(ErrorCode::kInternal, "attention: cross-attention in a step without cross tables"));
    return out;
  }
  const float* rel = nullptr;
  if (a.rel_bias != backend::kNoWeight) {
    rel = be_.vec(a.rel_bias).data();
    if (a.rel_max < 0 || static_cast<int64_t>(be_.vec(a.rel_bias).size()) != a.n_heads * (2 * a.rel_max + 1)) {
      fail(error(ErrorCode::kInternal, "attention: relative bias table of the wrong size"));
      return out;
    }
  }
  float* qkvp = data(qkv);
  void* kc = be_.k_pool(a.layer);
  void* vc = be_.v_pool(a.layer);
  const bool f16 = be_.kv_f16();
  if (!a.cross) {
    // Per-head q/k norm and RoPE, in place on the packed rows; K/V into the cache.
    const float* qn = a.q_norm == backend::kNoWeight ? nullptr : be_.vec(a.q_norm).data();
    const float* kn = a.k_norm == backend::kNoWeight ? nullptr : be_.vec(a.k_norm).data();
    const backend::RopeTable* rt = a.rope >= 0 ? &be_.rope(a.rope) : nullptr;
    std::vector<int32_t> lens;  // LongRoPE: each token's sequence length picks the table
    if (rt && !rt->inv_freq_long.empty()) plan_.rope_lengths(lens);
    const auto layout = a.rope_interleaved ? RopeLayout::kInterleaved : RopeLayout::kNeox;
    be_.pool().parallel_for(n_, [&](int64_t b, int64_t e) {
      std::vector<float> c, s;
      for (int64_t t = b; t < e; ++t) {
        float* q = qkvp + t * stride;
        float* k = q + qw;
        const float* v = k + kw;
        if (qn) rmsnorm_rows(q, q, qn, a.n_heads, hd, a.qk_eps);
        if (kn) rmsnorm_rows(k, k, kn, a.n_kv_heads, hd, a.qk_eps);
        if (rt) {
          const auto& inv = !lens.empty() && lens[t] > rt->long_after ? rt->inv_freq_long : rt->inv_freq;
          const double scale = rt->scale;
          const int64_t rot = static_cast<int64_t>(inv.size()) * 2;
          c.resize(rot / 2);
          s.resize(rot / 2);
          // Angles in double so long positions keep precision.
          for (int64_t i = 0; i < rot / 2; ++i) {
            const double ang = static_cast<double>(plan_.positions[t]) * inv[i];
            c[i] = static_cast<float>(std::cos(ang) * scale);
            s[i] = static_cast<float>(std::sin(ang) * scale);
          }
          rope(q, a.n_heads, hd, rot, c.data(), s.data(), layout);
          rope(k, a.n_kv_heads, hd, rot, c.data(), s.data(), layout);
        }
        const int64_t slot = plan_.slot(t);
        store_kv_row(kc, vc, slot * kw, k, v, kw, f16);
      }
    });
  }
  AttentionParams ap;
  ap.n_heads = a.n_heads;
  ap.n_kv_heads = a.n_kv_heads;
  ap.head_dim = hd;
  ap.scale = a.scale > 0 ? a.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  ap.softcap = a.softcap;
  ap.window = a.window;
  ap.rel_bias = rel;
  ap.rel_max = a.rel_max;
  ap.kv_f16 = f16;
  // Queries: a contiguous (n, qw) copy of the q heads.
  backend::Ops::Scope scope(*this);
  Tensor q = alloc(n_, qw);
  for (int64_t t = 0; t < n_; ++t) std::memcpy(data(q) + t * qw, qkvp + t * stride, static_cast<size_t>(qw) * 4);
  for (int64_t i = 0; i < n_;) {
    // A run of consecutive positions of one sequence.
    int64_t j = i + 1;
    while (j < n_ && plan_.seq_row[j] == plan_.seq_row[i] && plan_.positions[j] == plan_.positions[j - 1] + 1) ++j;
    const int32_t row = plan_.seq_row[i];
    const int32_t* blocks = plan_.block_tables.data() + static_cast<size_t>(row) * plan_.max_blocks;
    if (a.cross) {
      blocks = plan_.cross_tables.data() + static_cast<size_t>(row) * plan_.cross_max_blocks;
      ap.kv_len = plan_.cross_len[row];
    } else if (!a.causal) {
      // The sequence's whole span: its last position in this step (an encoder step holds
      // every input token of the sequence).
      int64_t last = plan_.positions[j - 1];
      for (int64_t t = j; t < n_ && plan_.seq_row[t] == row; ++t) last = std::max<int64_t>(last, plan_.positions[t]);
      ap.kv_len = last + 1;
    }
    cpu::attention(data(q) + i * qw, j - i, plan_.positions[i], kc, vc, kw, data(out) + i * qw, ap, &be_.pool(),
                   blocks);
    i = j;
  }
  return out;
}

void CpuOps::store_kv(Tensor kv, int layer) {
  if (!ok()) return;
  const auto& kvl = be_.kv_layout();
  const int64_t kw = kvl.row();
  if (layer < 0 || layer >= kvl.n_layers || kv.cols != 2 * kw || kv.rows != n_) {
    fail(error(ErrorCode::kInternal, "store_kv: layer " + std::to_string(layer) + " / " + std::to_string(kv.cols) +
                                         " columns do not match the KV pool"));
    return;
  }
  void* kc = be_.k_pool(layer);
  void* vc = be_.v_pool(layer);
  const float* p = data(kv);
  for (int64_t t = 0; t < n_; ++t)
    store_kv_row(kc, vc, plan_.slot(t) * kw, p + t * 2 * kw, p + t * 2 * kw + kw, kw, be_.kv_f16());
}

}  // namespace

Status run_cpu_forward(CpuBackend& be, const backend::StepPlan& plan, const backend::Backend::Forward& forward,
                       const backend::StepOptions& opts) {
  CpuOps ops(be, plan, opts);
  Status st = forward(ops);
  if (!st.ok()) return st;
  return ops.status();
}

}  // namespace ballast::cpu
