// Vectorized float ops of the forward pass. Raw pointers, shapes in comments; all
// in-place variants allow out == in.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace ballast::cpu {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]. x, w, out: (n). For a (1 + w)
// convention the caller passes the precomputed 1 + w.
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);
// Row-wise rmsnorm: x, out: (rows, n); w: (n) shared by all rows (per-head q/k norm).
void rmsnorm_rows(float* out, const float* x, const float* w, int64_t rows, int64_t n, float eps);
// LayerNorm with optional bias (b may be null). x, out: (n).
void layernorm(float* out, const float* x, const float* w, const float* b, int64_t n, float eps);

// In place: x: (n) -> softmax(x). Handles -inf entries; all -inf gives zeros.
void softmax(float* x, int64_t n);

void silu(float* x, int64_t n);            // x * sigmoid(x)
void gelu_tanh(float* x, int64_t n);       // 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
void gelu_erf(float* x, int64_t n);        // exact 0.5x(1 + erf(x/sqrt2))
// Gated MLP activations: out[i] = act(gate[i]) * up[i]. out may alias gate or up.
void swiglu(float* out, const float* gate, const float* up, int64_t n);
void geglu_tanh(float* out, const float* gate, const float* up, int64_t n);

void add(float* out, const float* a, const float* b, int64_t n);   // out = a + b
void mul(float* out, const float* a, const float* b, int64_t n);   // out = a * b
void scale(float* x, float s, int64_t n);                          // x *= s
void axpy(float* y, float a, const float* x, int64_t n);           // y += a * x
float dot(const float* a, const float* b, int64_t n);
// out = softcap * tanh(x / softcap), in place (logit soft-capping).
void softcap(float* x, float cap, int64_t n);

// ---- RoPE ----
enum class RopeLayout {
  kNeox,         // rotate-half: pairs (i, i + rot_dim/2)  (HF order)
  kInterleaved,  // GPT-J: pairs (2i, 2i+1)                (GGUF's permuted order)
};
// inv_freq: (rot_dim/2), inv_freq[i] = theta^(-2i/rot_dim). Callers apply their
// scaling (linear / frequency-band / yarn) to this table.
void rope_inv_freq(float* inv_freq, int64_t rot_dim, float theta);
// cos, sin: (rot_dim/2) for position `pos` (pos may be pre-divided for linear scaling).
void rope_cos_sin(const float* inv_freq, int64_t rot_dim, float pos, float* cos, float* sin);
// x: (n_heads, head_dim), rotated in place over the first rot_dim dims of each head
// (rot_dim <= head_dim, even); cos, sin: (rot_dim/2) for this token's position.
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, const float* cos,
          const float* sin, RopeLayout layout);

// ---- attention ----
struct AttentionParams {
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // n_heads % n_kv_heads == 0 (GQA: n_heads / n_kv_heads q per kv)
  int64_t head_dim = 0;
  float scale = 0.f;       // logits = scale * q.k (usually 1/sqrt(head_dim))
  float softcap = 0.f;     // > 0: logits = softcap * tanh(logits / softcap)
  int64_t window = 0;      // > 0: a query at position p sees keys in (p - window, p]
  int64_t kv_len = -1;     // >= 0: non-causal, every query sees keys [0, kv_len)
  // Additive bias (n_heads, 2 rel_max + 1) by clamped distance t - p (see backend::AttentionSpec).
  const float* rel_bias = nullptr;
  int64_t rel_max = 0;
  bool kv_f16 = false;     // k, v hold IEEE half floats (else float)
};

// Causal attention of n_q consecutive queries against a KV cache span (or, with
// p.kv_len >= 0, every query against keys [0, kv_len)).
// q:   (n_q, n_heads, head_dim); query i sits at absolute position q_pos0 + i.
// k,v: (>= q_pos0 + n_q rows, n_kv_heads * head_dim) with row stride kv_stride elements,
//      float or (p.kv_f16) IEEE half; row t holds position t.
// out: (n_q, n_heads, head_dim). Query at p sees rows [max(0, p - window + 1), p].
// blocks: a paged cache's block table (position t at row blocks[t / 16] * 16 + t % 16),
// or null (row t holds position t).
// pool may be null (serial); parallel over (query, head).
void attention(const float* q, int64_t n_q, int64_t q_pos0, const void* k, const void* v,
               int64_t kv_stride, float* out, const AttentionParams& p, ThreadPool* pool,
               const int32_t* blocks = nullptr);

// n half floats -> float (F16C).
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n);
// n floats -> half floats, round to nearest even (F16C).
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n);
// Row `row` of head g of a K or V pool as floats: the row itself when the pool is float,
// else converted into tmp (head_dim floats).
inline const float* kv_head_row(const void* base, int64_t row, int64_t stride, int64_t g, int64_t d, bool f16,
                                float* tmp) {
  if (!f16) return static_cast<const float*>(base) + row * stride + g * d;
  f16_to_f32_row(static_cast<const uint16_t*>(base) + row * stride + g * d, tmp, d);
  return tmp;
}

}  // namespace ballast::cpu
