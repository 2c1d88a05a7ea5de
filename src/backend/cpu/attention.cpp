// GQA attention over a KV span (causal, windowed, or a whole encoder span; optional
// relative-position bias). Work items are (query, kv head, key chunk):
// the query heads sharing a kv head read each K/V row once, and long spans split into
// key chunks (partial softmax states merged afterwards) so one decode query still
// keeps every thread busy.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/simd.h"

namespace ballast::cpu {
namespace {

constexpr int64_t kKeyChunk = 256;

// Partial softmax state of one head over one key chunk: out = acc / sum.
struct Partial {
  float max;
  float sum;
  float* acc;  // (head_dim)
};

struct Span {
  int64_t lo, hi;  // inclusive key rows a query sees
};

Span span_of(int64_t pos, const AttentionParams& p) {
  if (p.kv_len >= 0) return {0, p.kv_len - 1};
  return {p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0, pos};
}

// Heads [h0, h0 + group) of query q_i (all reading kv head `g`) over keys [lo, hi]:
// writes each head's partial state (unnormalized acc, max, sum).
// Cache row of position t: paged through the block table (16 positions a block) or linear.
inline int64_t cache_row(const int32_t* blocks, int64_t t) {
  return blocks ? static_cast<int64_t>(blocks[t >> 4]) * 16 + (t & 15) : t;
}

}  // namespace

// attention_tiled.cpp: AVX-512 kernels (batches as tiles; one key chunk of one query).
bool attention_tiled(const float* q, int64_t n_q, int64_t q_pos0, const void* k, const void* v, int64_t kv_stride,
                     float* out, const AttentionParams& p, ThreadPool* pool, const int32_t* blocks);
bool attention_fast_decode_supported(const AttentionParams& p);
bool attend_chunk_avx512(const float* q_i, const void* k, const void* v, int64_t kv_stride, const int32_t* blocks,
                         int64_t g, int64_t h0, int64_t group, int64_t lo, int64_t hi, const AttentionParams& p,
                         float* max_out, float* sum_out, float* const* acc_out);
// attention_avx2.cpp: the same two kernels with 8-lane vectors (CPUs without AVX-512).
bool attention_tiled_avx2(const float* q, int64_t n_q, int64_t q_pos0, const void* k, const void* v,
                          int64_t kv_stride, float* out, const AttentionParams& p, ThreadPool* pool,
                          const int32_t* blocks);
bool attention_avx2_supported(const AttentionParams& p);
void attend_chunk_avx2(const float* q_i, const void* k, const void* v, int64_t kv_stride, const int32_t* blocks,
                       int64_t g, int64_t h0, int64_t group, int64_t lo, int64_t hi, const AttentionParams& p,
                       float* max_out, float* sum_out, float* const* acc_out);

namespace {

void attend_chunk(const float* q_i, int64_t q_pos, const void* k, const void* v, int64_t kv_stride,
                  const int32_t* blocks, int64_t g, int64_t h0, int64_t group, int64_t lo, int64_t hi,
                  const AttentionParams& p, Partial* parts, std::vector<float>& scores) {
  const bool avx512 = attention_fast_decode_supported(p);
  if (group <= 16 && !p.rel_bias && (avx512 || attention_avx2_supported(p))) {
    float mx[16], sm[16];
    float* acc[16];
    for (int64_t j = 0; j < group; ++j) acc[j] = parts[j].acc;
    if (avx512) attend_chunk_avx512(q_i, k, v, kv_stride, blocks, g, h0, group, lo, hi, p, mx, sm, acc);
    else attend_chunk_avx2(q_i, k, v, kv_stride, blocks, g, h0, group, lo, hi, p, mx, sm, acc);
    for (int64_t j = 0; j < group; ++j) {
      parts[j].max = mx[j];
      parts[j].sum = sm[j];
    }
    return;
  }
  const int64_t d = p.head_dim, n = hi - lo + 1;
  scores.resize(group * n);
  thread_local std::vector<float> row_tmp;
  row_tmp.resize(d);
  for (int64_t t = 0; t < n; ++t) {
    // One K row serves all heads of the group.
    const float* kr = kv_head_row(k, cache_row(blocks, lo + t), kv_stride, g, d, p.kv_f16, row_tmp.data());
    for (int64_t j = 0; j < group; ++j) scores[j * n + t] = p.scale * dot_f32(q_i + (h0 + j) * d, kr, d);
  }
  if (p.rel_bias) {
    const int64_t width = 2 * p.rel_max + 1;
    for (int64_t j = 0; j < group; ++j) {
      const float* bias = p.rel_bias + (h0 + j) * width + p.rel_max;
      for (int64_t t = 0; t < n; ++t)
        scores[j * n + t] += bias[std::clamp<int64_t>(lo + t - q_pos, -p.rel_max, p.rel_max)];
    }
  }
  for (int64_t j = 0; j < group; ++j) {
    float* s = scores.data() + j * n;
    if (p.softcap > 0.f) softcap(s, p.softcap, n);
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < n; ++t) mx = std::max(mx, s[t]);
    const float sum = exp_sub_sum(s, mx, n);
    parts[j].max = mx;
    parts[j].sum = sum;
    std::fill(parts[j].acc, parts[j].acc + d, 0.f);
  }
  for (int64_t t = 0; t < n; ++t) {
    const float* vr = kv_head_row(v, cache_row(blocks, lo + t), kv_stride, g, d, p.kv_f16, row_tmp.data());
    for (int64_t j = 0; j < group; ++j) axpy(parts[j].acc, scores[j * n + t], vr, d);
  }
}

}  // namespace

void attention(const float* q, int64_t n_q, int64_t q_pos0, const void* k, const void* v,
               int64_t kv_stride, float* out, const AttentionParams& p, ThreadPool* pool, const int32_t* blocks) {
  // The tiled kernels are causal and unbiased: encoder spans, cross-attention and relative
  // biases take the generic path.
  if (n_q >= 8 && p.kv_len < 0 && !p.rel_bias &&
      (attention_tiled(q, n_q, q_pos0, k, v, kv_stride, out, p, pool, blocks) ||
       attention_tiled_avx2(q, n_q, q_pos0, k, v, kv_stride, out, p, pool, blocks)))
    return;
  const int64_t d = p.head_dim, group = p.n_heads / p.n_kv_heads;
  const int64_t longest = [&] {
    int64_t m = 0;
    for (int64_t i = 0; i < n_q; ++i) {
      Span s = span_of(q_pos0 + i, p);
      m = std::max(m, s.hi - s.lo + 1);
    }
    return m;
  }();
  const int64_t n_chunks = (longest + kKeyChunk - 1) / kKeyChunk;
  const int64_t n_jobs = n_q * p.n_kv_heads * n_chunks;

  // Partial states: (n_q, n_kv_heads, n_chunks, group) x {max, sum, acc[d]}.
  std::vector<float> state(n_chunks > 1 ? n_jobs * group * (d + 2) : 0);
  auto body = [&](int64_t b, int64_t e) {
    thread_local std::vector<float> scores, acc;
    std::vector<Partial> parts(group);
    for (int64_t job = b; job < e; ++job) {
      const int64_t c = job % n_chunks, g = (job / n_chunks) % p.n_kv_heads, i = job / (n_chunks * p.n_kv_heads);
      const Span s = span_of(q_pos0 + i, p);
      const int64_t lo = s.lo + c * kKeyChunk, hi = std::min(s.hi, lo + kKeyChunk - 1);
      const float* q_i = q + i * p.n_heads * d;
      if (n_chunks == 1) {
        // Whole span in one chunk: normalize straight into out.
        for (int64_t j = 0; j < group; ++j) parts[j].acc = out + (i * p.n_heads + g * group + j) * d;
        attend_chunk(q_i, q_pos0 + i, k, v, kv_stride, blocks, g, g * group, group, lo, hi, p, parts.data(), scores);
        for (int64_t j = 0; j < group; ++j) scale(parts[j].acc, 1.f / parts[j].sum, d);
        continue;
      }
      float* st = state.data() + job * group * (d + 2);
      for (int64_t j = 0; j < group; ++j) parts[j].acc = st + j * (d + 2) + 2;
      if (lo > hi) {  // this query's span is shorter than the longest one
        for (int64_t j = 0; j < group; ++j) {
          st[j * (d + 2)] = -std::numeric_limits<float>::infinity();
          st[j * (d + 2) + 1] = 0.f;
        }
        continue;
      }
      attend_chunk(q_i, q_pos0 + i, k, v, kv_stride, blocks, g, g * group, group, lo, hi, p, parts.data(), scores);
      for (int64_t j = 0; j < group; ++j) {
        st[j * (d + 2)] = parts[j].max;
        st[j * (d + 2) + 1] = parts[j].sum;
      }
    }
  };
  if (pool) {
    pool->parallel_for(n_jobs, body);
  } else {
    body(0, n_jobs);
  }
  if (n_chunks == 1) return;

  // Merge chunk states: out = sum_c e^(m_c - M) acc_c / sum_c e^(m_c - M) sum_c.
  auto merge = [&](int64_t b, int64_t e) {
    for (int64_t ih = b; ih < e; ++ih) {
      const int64_t i = ih / p.n_heads, h = ih % p.n_heads, g = h / group, j = h % group;
      auto at = [&](int64_t c) { return state.data() + ((i * p.n_kv_heads + g) * n_chunks + c) * group * (d + 2) + j * (d + 2); };
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < n_chunks; ++c) mx = std::max(mx, at(c)[0]);
      float* o = out + ih * d;
      std::fill(o, o + d, 0.f);
      float total = 0.f;
      for (int64_t c = 0; c < n_chunks; ++c) {
        const float* st = at(c);
        if (st[1] == 0.f) continue;
        const float w = std::exp(st[0] - mx);
        total += w * st[1];
        axpy(o, w, st + 2, d);
      }
      scale(o, 1.f / total, d);
    }
  };
  if (pool) {
    pool->parallel_for(n_q * p.n_heads, merge);
  } else {
    merge(0, n_q * p.n_heads);
  }
}

void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

}  // namespace ballast::cpu
