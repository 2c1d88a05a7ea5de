// The op interface: every architecture is written once, as a sequence of these ops, and
// every backend executes them (the CPU at once in fp32; CUDA enqueued on a stream, where
// it fuses as it sees fit and replays decode steps as graphs). Ops know no architecture
// and no tensor name.
#pragma once
#include <cstdint>
#include <string>

#include "core/status.h"

namespace ballast::backend {

// A weight held by a backend (Backend::add_matrix / add_vector); -1 = none.
using WeightId = int32_t;
constexpr WeightId kNoWeight = -1;
// A RoPE frequency table held by a backend (Backend::add_rope); -1 = none.
using RopeId = int32_t;

// An activation of the current step: (rows, cols). Storage and precision are the
// backend's (CPU fp32; CUDA fp32 residual, bf16 elsewhere). Valid until the enclosing
// Ops::Scope ends.
struct Tensor {
  int32_t id = -1;
  int64_t rows = 0, cols = 0;
  bool valid() const { return id >= 0; }
};

enum class NormKind {
  kRms,    // x / sqrt(mean(x^2) + eps) * w          (no mean subtraction, no bias)
  kLayer,  // (x - mean) / sqrt(var + eps) * w + b   (b optional)
};
// Norm weights are uploaded with any offset already applied (e.g. a 1 + w convention).
struct Norm {
  NormKind kind = NormKind::kRms;
  WeightId w = kNoWeight;  // (cols)
  WeightId b = kNoWeight;  // (cols) LayerNorm bias or none
  float eps = 1e-6f;
};

enum class Act { kSilu, kGeluTanh, kGeluErf, kRelu };

struct AttentionSpec {
  int layer = 0;  // KV cache layer
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0;    // score = scale * q.k; 0: 1/sqrt(head_dim)
  float softcap = 0;  // > 0: score = softcap * tanh(score / softcap)
  int window = 0;     // > 0: a query at p sees keys in (p - window, p]
  // false: a query sees every key of its sequence's span: positions [0, last position of
  // the sequence in this step] (an encoder, whose whole input is one step).
  bool causal = true;
  WeightId q_norm = kNoWeight, k_norm = kNoWeight;  // (head_dim) per-head RMSNorm
  float qk_eps = 1e-6f;
  RopeId rope = -1;   // -1: no rotary embedding (learned or relative positions)
  bool rope_interleaved = false;  // pairs (2i, 2i+1) (GGUF's permuted order) vs rotate-half
  // Additive relative-position bias, a vector (n_heads, 2 rel_max + 1):
  // score(h, q at p, key at t) += rel_bias[h * (2 rel_max + 1) + clamp(t - p, -rel_max, rel_max) + rel_max]
  // (T5's bucketed bias, expanded by distance at bind time).
  WeightId rel_bias = kNoWeight;
  int rel_max = 0;
  // Cross-attention: the input holds only queries (n, n_heads * head_dim); the keys are the
  // sequence's encoder K/V (store_kv'd into `layer` by its encode step), read through the
  // plan's cross tables; nothing is written. Non-causal, no RoPE.
  bool cross = false;
};

class Ops {
 public:
  virtual ~Ops() = default;

  // Tensors created after a Scope opens are released when it closes (stack order): an
  // architecture opens one per layer and keeps its residual stream outside.
  class Scope {
   public:
    explicit Scope(Ops& o) : o_(o), mark_(o.mark()) {}
    ~Scope() { o_.release(mark_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Ops& o_;
    int64_t mark_;
  };

  // (n, cols) = scale * table[step tokens]. The backend checked every id against the
  // table before the step; an id out of range still never reads memory.
  virtual Tensor embed(WeightId table, float scale) = 0;
  // (n, cols) learned absolute positions: table[step positions].
  virtual Tensor embed_positions(WeightId table) = 0;
  virtual Tensor norm(Tensor x, const Norm& n) = 0;
  // (n, rows(w)) = x @ w^T (+ bias).
  virtual Tensor linear(Tensor x, WeightId w, WeightId bias = kNoWeight) = 0;
  // residual += x @ w^T (+ bias): the residual-add epilogue.
  virtual void linear_add(Tensor x, WeightId w, Tensor residual, WeightId bias = kNoWeight) = 0;
  // w = [gate; up] (2F, K) packed by the loader: (n, F) = act(x @ gate^T) * (x @ up^T).
  virtual Tensor linear_glu(Tensor x, WeightId gate_up, Act act) = 0;
  virtual Tensor activation(Tensor x, Act act) = 0;
  // residual += y.
  virtual void add(Tensor residual, Tensor y) = 0;
  // qkv: (n, (n_heads + 2 n_kv) * head_dim), rows [q heads | k heads | v heads], bias
  // already added. Per-head q/k norm, RoPE at each token's position, K/V written to this
  // layer's cache at the step's slots, attention over the sequence's cache:
  // (n, n_heads * head_dim). qkv is rewritten in place and must be a `linear` output.
  virtual Tensor attention(Tensor qkv, const AttentionSpec& a) = 0;
  // kv: (n, 2 * n_kv_heads * head_dim), rows [k heads | v heads]: written to `layer`'s
  // cache at the step's slots, no attention (an encoder's cross-attention K/V).
  virtual void store_kv(Tensor kv, int layer) = 0;
  // The step's logits: the rows of x that want logits, normed, times head^T, optionally
  // soft-capped: (m, rows(head)). Then the backend runs the logits chain on them.
  virtual void logits(Tensor x, const Norm& final_norm, WeightId head, float softcap) = 0;
  // --check-numerics: fails the step naming layer `layer` if x holds a NaN/Inf (backends
  // that cannot check cheaply ignore it).
  virtual void check(Tensor x, int64_t layer) {}
  // The first error an op hit (ops never throw; the step fails with it).
  virtual Status status() const = 0;

 protected:
  virtual int64_t mark() const = 0;
  virtual void release(int64_t mark) = 0;
};

}  // namespace ballast::backend
