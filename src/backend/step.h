// What the engine hands a backend each step: the tokens, where their K/V go (the
// engine's block tables), which rows want logits, and the logits chain's requests.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/logits_chain.h"

namespace ballast::backend {

constexpr int64_t kKvBlockTokens = 16;

// K/V geometry: the backend's pool holds, per layer, K and V of (blocks, 16, n_kv * hd).
struct KvLayout {
  int64_t n_layers = 0, n_kv_heads = 0, head_dim = 0;
  int64_t row() const { return n_kv_heads * head_dim; }
  int64_t bytes_per_block(int64_t elem_bytes) const { return 2 * n_layers * kKvBlockTokens * row() * elem_bytes; }
};

struct StepPlan {
  std::vector<int32_t> tokens;     // (n,)
  std::vector<int32_t> positions;  // (n,) absolute position in its sequence
  std::vector<int32_t> seq_row;    // (n,) row of block_tables; a sequence's tokens are consecutive positions
  std::vector<int32_t> logit_rows; // (m,) batch rows whose logits are wanted, ascending
  // (n_seqs, max_blocks) block ids from the engine's block manager, -1 padded.
  std::vector<int32_t> block_tables;
  int32_t max_blocks = 0;
  int32_t n_seqs = 0;
  // (n_seqs) tokens each sequence holds (prompt + generated) when the engine knows them, so
  // that every chunk of a prompt runs as the whole prompt would (LongRoPE); may be empty.
  std::vector<int32_t> seq_len;
  // Encoder-decoders. encode: the step runs the model's encoder over `tokens` (whole
  // inputs, positions from 0, block_tables = each sequence's encoder blocks) and stores
  // its cross-attention K/V there; no logits. A decoder step's cross-attention reads, per
  // sequence row, cross_len[row] encoder positions through cross_tables (n_seqs,
  // cross_max_blocks), -1 padded.
  bool encode = false;
  std::vector<int32_t> cross_tables;
  std::vector<int32_t> cross_len;  // (n_seqs,)
  int32_t cross_max_blocks = 0;

  size_t size() const { return tokens.size(); }
  int32_t block_of(int64_t i) const { return block_tables[static_cast<size_t>(seq_row[i]) * max_blocks + positions[i] / kKvBlockTokens]; }
  // Cache slot (block * 16 + offset) of token i.
  int64_t slot(int64_t i) const { return static_cast<int64_t>(block_of(i)) * kKvBlockTokens + positions[i] % kKvBlockTokens; }
  // Per token: the length of its sequence that LongRoPE picks its table by: seq_len when
  // given, else the last position the sequence reaches in this step + 1.
  void rope_lengths(std::vector<int32_t>& out) const {
    const bool known = seq_len.size() == static_cast<size_t>(n_seqs);
    std::vector<int32_t> len(static_cast<size_t>(n_seqs > 0 ? n_seqs : 0), 0);
    for (size_t i = 0; i < size(); ++i)
      if (seq_row[i] >= 0 && seq_row[i] < n_seqs) len[seq_row[i]] = std::max(len[seq_row[i]], positions[i] + 1);
    out.resize(size());
    for (size_t i = 0; i < size(); ++i) {
      const int32_t r = seq_row[i];
      out[i] = r < 0 || r >= n_seqs ? positions[i] + 1 : std::max(len[r], known ? seq_len[r] : 0);
    }
  }
};

// What to do with the step's logits rows.
struct LogitsRequest {
  const std::vector<uint8_t>* valid = nullptr;  // vocabulary mask: padding / unembeddable rows 0
  std::vector<SampleRow> rows;                  // (m,) one per logits row; empty: none sampled
  bool return_logits = false;                   // copy the raw logits back (tests, tools)
};

struct RowResult {
  Status status;       // kNumericalError (NaN/Inf among valid ids) or kInternal
  SampleResult sample;
};

struct StepResult {
  std::vector<RowResult> rows;  // (m,) when rows were requested
  std::vector<float> logits;    // (m, head rows) when return_logits
};

struct StepOptions {
  bool check_numerics = false;  // check every layer's output; name the first non-finite one
  // Identity of the forward (the model; set by Model::step): steps with the same id and
  // shape issue the same ops, so a backend may reuse what it learned from an earlier
  // one (CUDA: a decode step whose graph exists skips its dry pass).
  const void* forward_id = nullptr;
};

}  // namespace ballast::backend
