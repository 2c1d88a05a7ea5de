// On-GPU sampling (sample.cu): the logits chain (backend/logits_chain.h; host version in backend/cpu/logits_chain.cpp) for each
// logits row, so that only ids and log-probabilities cross the bus. Per row:
//   vocabulary mask (valid[i] == 0: excluded) + non-finite check on valid ids
//   -> log-softmax of the masked raw logits: the reported logprob of the chosen id and the
//      top-N list come from this distribution, before any transform
//   -> logit_bias -> repetition penalty (HF: x > 0 ? x / p : x * p, ids of prompt + generated)
//   -> presence/frequency (x -= frequency * count + presence, ids of generated)
//   -> temperature <= 0: argmax (ties: lowest id); else x / temperature, top-k, top-p,
//      min-p, and a draw from the renormalized kept set.
// Candidates are ordered like the CPU's sort (logit descending, id ascending), so top-k and
// top-p keep exactly the CPU's set, ties included. Differences from the CPU sampler:
//   - the draw uses a counter-based hash of (seed, step), not std::mt19937_64;
//   - probabilities are 2^-43 fixed-point multiples of the largest one, so a token more than
//     ~30.5 nats below the top (probability < 6e-14 relative) is never drawn;
//   - min_p > 1 is treated as 1 (keeps the tokens tied at the top value);
//   - non-finite bias values are not supported (-inf bans a token, as on the CPU).
// Usable inside CUDA graph capture: no allocation, no host sync, grid = m blocks.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

namespace ballast::cuda {

constexpr int kMaxTopLogprobs = 20;

struct SampleRowParams {          // one per logits row (host fills, uploaded as an array)
  float temperature;              // <= 0: greedy
  int32_t top_k;                  // <= 0: off
  float top_p;                    // >= 1: off
  float min_p;                    // <= 0: off
  float repetition_penalty;       // 1: off
  float presence_penalty, frequency_penalty;
  int32_t pen_begin, pen_count;   // slice of pen_ids/pen_counts: unique ids in prompt+generated;
                                  // count = occurrences in generated (0 if only in prompt)
  int32_t bias_begin, bias_count; // slice of bias_ids/bias_vals (unique ids)
  int32_t top_logprobs;           // 0..kMaxTopLogprobs
  uint64_t seed;                  // the draw's uniform is a hash of (seed, step)
  uint64_t step;
};

enum SampleStatus : int32_t {
  kSampleOk = 0,
  kSampleNonFinite = 1,  // a valid logit is NaN/Inf (id -1)
  kSampleNoToken = 2,    // no valid token (all masked or banned by a -inf bias) (id -1)
  kSampleNoWork = 3,     // the row has bias/penalties but work is null (id -1)
};

struct SampleRowOut {
  int32_t id;
  float logprob;  // of id under the masked raw distribution
  int32_t n_top;  // entries written to top_ids/top_lps for this row
  int32_t status; // SampleStatus
};

// Does this row need the work buffer (a transformed copy of its logits)?
inline bool sample_row_needs_work(const SampleRowParams& p) {
  const bool pen = p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  return p.bias_count > 0 || (pen && p.pen_count > 0);
}

// Samples one token per logits row; one 1024-thread block per row.
//   logits (m, V) f32: read only, never modified.
//   valid: V bytes (0 = never produced) or null (all valid).
//   params: (m,) device array.
//   pen_ids/pen_counts, bias_ids/bias_vals: device arrays indexed by the rows' slices; may be
//     null when every row's count is 0. Ids outside [0, V) are ignored. Each row writes only
//     its own work row, so rows may share slices.
//   work (m, V) f32 scratch: row r is used only when sample_row_needs_work(params[r]); may be
//     null when no row needs it (a row that does then gets kSampleNoWork).
//   out: (m,) results.
//   top_ids/top_lps (m, kMaxTopLogprobs): the top_logprobs most likely ids of the raw masked
//     distribution, most likely first (ties: lower id first); the remaining slots get id -1,
//     logprob 0. May both be null (no top lists).
// Cost per row, in passes over its V logits (the row mostly stays in L2 between passes):
// 1 for greedy without bias/penalties; each of top-N, top-k and top-p adds a radix select
// (2-4 passes, up to 3 more where values tie at the threshold; top-N also 1 gather); bias or
// penalties add a copy into work (1 read + 1 write) and one max pass; a draw is ~1 pass.
void sample_rows(const float* logits, int m, int V, const uint8_t* valid, const SampleRowParams* params,
                 const int32_t* pen_ids, const int32_t* pen_counts, const int32_t* bias_ids,
                 const float* bias_vals, float* work, SampleRowOut* out, int32_t* top_ids, float* top_lps,
                 cudaStream_t s);

// Host helpers for filling the lists. Appends the unique ids of prompt + generated to
// ids/counts (count = occurrences in generated) and sets p.pen_begin/pen_count.
inline void append_penalty_list(const int32_t* prompt, size_t n_prompt, const int32_t* generated, size_t n_generated,
                                std::vector<int32_t>& ids, std::vector<int32_t>& counts, SampleRowParams& p) {
  std::vector<int32_t> all(prompt, prompt + n_prompt), gen(generated, generated + n_generated);
  all.insert(all.end(), gen.begin(), gen.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  std::sort(gen.begin(), gen.end());
  p.pen_begin = static_cast<int32_t>(ids.size());
  p.pen_count = static_cast<int32_t>(all.size());
  for (int32_t id : all) {
    auto [lo, hi] = std::equal_range(gen.begin(), gen.end(), id);
    ids.push_back(id);
    counts.push_back(static_cast<int32_t>(hi - lo));
  }
}

// Appends (id, bias) pairs (e.g. a std::map<int32_t, float>, unique ids) and sets
// p.bias_begin/bias_count.
template <class Map>
void append_bias_list(const Map& bias, std::vector<int32_t>& ids, std::vector<float>& vals, SampleRowParams& p) {
  p.bias_begin = static_cast<int32_t>(ids.size());
  p.bias_count = 0;
  for (const auto& [id, b] : bias) {
    ids.push_back(static_cast<int32_t>(id));
    vals.push_back(static_cast<float>(b));
    ++p.bias_count;
  }
}

}  // namespace ballast::cuda
