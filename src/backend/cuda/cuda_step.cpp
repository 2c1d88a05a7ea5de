// The CUDA backend's per-step host work: checking the plan and building its index
// tables (tokens, positions, slots, block tables, prefill tiles, encoder-decoder spans and
// cross tables), the logits chain tail
// (greedy_rows or sample_rows with per-row parameters), and the results.
#if BALLAST_HAVE_CUDA
#include <algorithm>
#include <climits>
#include <cstring>

#include "backend/cuda/cuda_backend_impl.h"

namespace ballast::cuda {

using backend::kKvBlockTokens;

#define LAUNCH(name, expr)                                                             \
  do {                                                                                 \
    if (profiling()) prof_begin(d_.stream);                                            \
    expr;                                                                              \
    if (profiling()) prof_end(name, d_.stream);                                        \
    const char* m_ = check_launch(name);                                               \
    if (*m_) return error(ErrorCode::kInternal, std::string("CUDA ") + m_);            \
  } while (0)

// Checks the plan against the pool (an entry outside it is the engine's bug: kInternal),
// then fills the pinned staging buffer with the packed index tables (layout: StepIndex).
Status CudaBackend::build_index(const backend::StepPlan& p, StepIndex& st) {
  const size_t n = p.size();
  if (n == 0) return error(ErrorCode::kInvalidArgument, "empty batch");
  if (n > static_cast<size_t>(INT_MAX / 8) || p.positions.size() != n || p.seq_row.size() != n || p.n_seqs <= 0 ||
      p.max_blocks <= 0 || p.block_tables.size() != static_cast<size_t>(p.n_seqs) * p.max_blocks)
    return error(ErrorCode::kInternal, "step plan: inconsistent sizes (" + std::to_string(n) + " tokens, " +
                                           std::to_string(p.positions.size()) + " positions, " +
                                           std::to_string(p.seq_row.size()) + " sequence rows, block tables " +
                                           std::to_string(p.block_tables.size()) + " for " + std::to_string(p.n_seqs) +
                                           " x " + std::to_string(p.max_blocks) + ")");
  for (int32_t b : p.block_tables)
    if (b < -1 || b >= d_.n_blocks)
      return error(ErrorCode::kInternal, "KV block table entry " + std::to_string(b) + " is outside the pool [0, " +
                                             std::to_string(d_.n_blocks) + ")");
  int max_pos = 0;
  for (size_t i = 0; i < n; ++i) {
    const int32_t s = p.seq_row[i], pos = p.positions[i];
    if (s < 0 || s >= p.n_seqs || pos < 0 || pos / kKvBlockTokens >= p.max_blocks || p.block_of(i) < 0)
      return error(ErrorCode::kInternal, "step plan: token " + std::to_string(i) + " (sequence row " + std::to_string(s) +
                                             ", position " + std::to_string(pos) + ") has no KV block");
    max_pos = std::max(max_pos, pos);
  }
  // Cross-attention tables (decoder steps of encoder-decoders), checked as the CPU backend
  // does: each row's length within its table, every block it reads within the pool.
  const bool cross = p.cross_max_blocks > 0 || !p.cross_len.empty();
  if (cross) {
    if (p.cross_max_blocks <= 0 || p.cross_max_blocks > INT_MAX / 256 ||
        p.cross_len.size() != static_cast<size_t>(p.n_seqs) ||
        p.cross_tables.size() != static_cast<size_t>(p.n_seqs) * p.cross_max_blocks)
      return error(ErrorCode::kInternal, "step plan: inconsistent cross-attention tables (" +
                                             std::to_string(p.cross_len.size()) + " lengths, " +
                                             std::to_string(p.cross_tables.size()) + " entries for " +
                                             std::to_string(p.n_seqs) + " x " + std::to_string(p.cross_max_blocks) + ")");
    for (int32_t r = 0; r < p.n_seqs; ++r) {
      const int32_t len = p.cross_len[r];
      if (len <= 0 || static_cast<int64_t>(len) > static_cast<int64_t>(p.cross_max_blocks) * kKvBlockTokens)
        return error(ErrorCode::kInternal, "step plan: cross length " + std::to_string(len) + " outside its table");
      for (int64_t j = 0; j < (len + kKvBlockTokens - 1) / kKvBlockTokens; ++j) {
        const int32_t b = p.cross_tables[static_cast<size_t>(r) * p.cross_max_blocks + j];
        if (b < 0 || b >= d_.n_blocks)
          return error(ErrorCode::kInternal, "cross block table entry " + std::to_string(b) + " is outside the pool [0, " +
                                                 std::to_string(d_.n_blocks) + ")");
      }
    }
  }
  const size_t m = p.logit_rows.size();
  for (size_t r = 0; r < m; ++r)
    if (p.logit_rows[r] < 0 || p.logit_rows[r] >= static_cast<int32_t>(n) || (r > 0 && p.logit_rows[r] <= p.logit_rows[r - 1]))
      return error(ErrorCode::kInternal, "step plan: logit rows must ascend within [0, " + std::to_string(n) + ")");

  // Decode-only: one token per sequence, every row wants logits (graph-capturable).
  bool one_each = static_cast<size_t>(p.n_seqs) == n;
  if (one_each) {
    seen_.assign(n, 0);
    for (size_t i = 0; i < n && one_each; ++i) one_each = !seen_[p.seq_row[i]]++;
  }
  st.plan = &p;
  st.n = static_cast<int>(n);
  st.m = static_cast<int>(m);
  st.n_seqs = p.n_seqs;
  st.decode_only = one_each && m == n && !p.encode;
  st.max_blocks = st.decode_only ? (p.max_blocks + 15) / 16 * 16 : p.max_blocks;
  st.cross_max_blocks = !cross ? 0 : st.decode_only ? (p.cross_max_blocks + 15) / 16 * 16 : p.cross_max_blocks;
  st.max_ctx = st.decode_only ? st.max_blocks * static_cast<int>(kKvBlockTokens) : max_pos + 1;
  st.gather = m > 0 && m != n;  // ascending distinct rows: all rows exactly when m == n

  // Attention split: runs of >= 16 consecutive positions of one sequence go to the
  // tensor-core prefill kernel in tiles of 64 (when the head size allows, decided per op);
  // the rest to the row kernels.
  row_ids_.clear();
  tiles_.clear();
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && p.seq_row[j] == p.seq_row[i] && p.positions[j] == p.positions[j - 1] + 1) ++j;
    if (!d_.no_flash && j - i >= 16) {
      for (size_t t = i; t < j; t += 64)
        tiles_.push_back({static_cast<int32_t>(t), static_cast<int32_t>(std::min<size_t>(64, j - t)), p.seq_row[i],
                          p.positions[t]});
    } else {
      for (size_t t = i; t < j; ++t) row_ids_.push_back(static_cast<int32_t>(t));
    }
    i = j;
  }
  st.n_rows = static_cast<int>(row_ids_.size());
  st.n_tiles = static_cast<int>(tiles_.size());

  st.off_pos = n;
  st.off_slot = 2 * n;
  st.off_seq = 3 * n;
  st.off_lidx = 4 * n;
  st.off_rows = st.off_lidx + m;
  st.off_tiles = st.off_rows + row_ids_.size();
  st.off_bt = st.off_tiles + 4 * tiles_.size();
  st.off_rope_len = st.off_bt + static_cast<size_t>(p.n_seqs) * st.max_blocks;
  st.off_span = st.off_rope_len + n;
  st.off_cross_len = st.off_span + p.n_seqs;
  st.off_cross_bt = st.off_cross_len + (cross ? p.n_seqs : 0);
  st.total = st.off_cross_bt + static_cast<size_t>(p.n_seqs) * st.cross_max_blocks;
  if (st.total * 4 > host_bytes_) {
    if (host_) cudaFreeHost(host_);
    host_ = nullptr;
    host_bytes_ = 0;
    CU_RETURN(cudaHostAlloc(&host_, st.total * 8, cudaHostAllocDefault));
    host_bytes_ = st.total * 8;
  }
  int32_t* h = static_cast<int32_t*>(host_);
  for (size_t i = 0; i < n; ++i) {
    h[i] = p.tokens[i];
    h[st.off_pos + i] = p.positions[i];
    h[st.off_slot + i] = static_cast<int32_t>(p.slot(static_cast<int64_t>(i)));
    h[st.off_seq + i] = p.seq_row[i];
  }
  std::copy(p.logit_rows.begin(), p.logit_rows.end(), h + st.off_lidx);
  std::copy(row_ids_.begin(), row_ids_.end(), h + st.off_rows);
  std::memcpy(h + st.off_tiles, tiles_.data(), tiles_.size() * sizeof(PrefillTile));
  for (int32_t s = 0; s < p.n_seqs; ++s) {
    const int32_t* src = p.block_tables.data() + static_cast<size_t>(s) * p.max_blocks;
    int32_t* row = h + st.off_bt + static_cast<size_t>(s) * st.max_blocks;
    std::copy(src, src + p.max_blocks, row);
    std::fill(row + p.max_blocks, row + st.max_blocks, -1);
  }
  p.rope_lengths(rope_len_);
  std::copy(rope_len_.begin(), rope_len_.end(), h + st.off_rope_len);
  int32_t* span = h + st.off_span;  // each sequence's last position in this step + 1
  std::fill(span, span + p.n_seqs, 0);
  for (size_t i = 0; i < n; ++i) span[p.seq_row[i]] = std::max(span[p.seq_row[i]], p.positions[i] + 1);
  if (cross) {
    std::copy(p.cross_len.begin(), p.cross_len.end(), h + st.off_cross_len);
    for (int32_t s = 0; s < p.n_seqs; ++s) {
      const int32_t* src = p.cross_tables.data() + static_cast<size_t>(s) * p.cross_max_blocks;
      int32_t* row = h + st.off_cross_bt + static_cast<size_t>(s) * st.cross_max_blocks;
      std::copy(src, src + p.cross_max_blocks, row);
      std::fill(row + p.cross_max_blocks, row + st.cross_max_blocks, -1);
    }
  }
  BALLAST_RETURN_IF_ERROR(idx_.ensure(st.total, &epoch_));
  const int32_t* d = idx_.p;
  st.tokens = d;
  st.pos = d + st.off_pos;
  st.slot = d + st.off_slot;
  st.seq = d + st.off_seq;
  st.lidx = d + st.off_lidx;
  st.row_ids = st.n_rows == st.n ? nullptr : d + st.off_rows;
  st.tiles = reinterpret_cast<const PrefillTile*>(d + st.off_tiles);
  st.bt = d + st.off_bt;
  st.rope_len = d + st.off_rope_len;
  st.span = d + st.off_span;
  st.cross_len = cross ? d + st.off_cross_len : nullptr;
  st.cross_bt = cross ? d + st.off_cross_bt : nullptr;
  return Status();
}

// Host side of the logits chain: greedy_rows when every row is plain greedy, else
// sample_rows with per-row parameters and penalty / bias lists.
Status CudaBackend::prepare_tail(const backend::LogitsRequest& req, int m, Tail& tail) {
  tail = Tail::kNone;
  if (req.rows.empty()) return Status();
  if (static_cast<int>(req.rows.size()) != m)
    return error(ErrorCode::kInternal, "logits request: " + std::to_string(req.rows.size()) + " rows for " +
                                           std::to_string(m) + " logits rows");
  bool greedy = true;
  for (const auto& r : req.rows) {
    if (!r.params) return error(ErrorCode::kInternal, "logits request: a row without sampling parameters");
    if (r.token_mask)
      return error(ErrorCode::kUnsupported,
                   "--device cuda: token masks (grammar / structured output) are not implemented on the GPU yet");
    const auto& p = *r.params;
    greedy = greedy && p.temperature <= 0 && p.repetition_penalty == 1.0 && p.presence_penalty == 0.0 &&
             p.frequency_penalty == 0.0 && p.logit_bias.empty() && p.top_logprobs <= 0;
  }
  uint64_t* ep = &epoch_;
  if (greedy) {
    tail = Tail::kGreedy;
    BALLAST_RETURN_IF_ERROR(ids_.ensure(m, ep));
    BALLAST_RETURN_IF_ERROR(lps_.ensure(m, ep));
    BALLAST_RETURN_IF_ERROR(gscratch_.ensure(greedy_scratch_bytes(m), ep));
    return Status();
  }
  sp_.clear();
  pen_ids_h_.clear();
  pen_counts_h_.clear();
  bias_ids_h_.clear();
  bias_vals_h_.clear();
  bool need_work = false;
  want_top_ = false;
  for (const auto& r : req.rows) {
    const auto& p = *r.params;
    SampleRowParams q{};
    q.temperature = static_cast<float>(p.temperature);
    q.top_k = static_cast<int32_t>(std::clamp<int64_t>(p.top_k, 0, INT32_MAX));
    q.top_p = static_cast<float>(p.top_p);
    q.min_p = static_cast<float>(p.min_p);
    q.repetition_penalty = static_cast<float>(p.repetition_penalty);
    q.presence_penalty = static_cast<float>(p.presence_penalty);
    q.frequency_penalty = static_cast<float>(p.frequency_penalty);
    q.top_logprobs = std::clamp(p.top_logprobs, 0, kMaxTopLogprobs);
    q.seed = r.seed;
    q.step = r.step;
    if (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0)
      append_penalty_list(r.prompt.data(), p.repetition_penalty != 1.0 ? r.prompt.size() : 0, r.generated.data(),
                          r.generated.size(), pen_ids_h_, pen_counts_h_, q);
    append_bias_list(p.logit_bias, bias_ids_h_, bias_vals_h_, q);
    need_work |= sample_row_needs_work(q);
    want_top_ |= q.top_logprobs > 0;
    sp_.push_back(q);
  }
  tail = need_work ? Tail::kSampleWork : Tail::kSample;
  BALLAST_RETURN_IF_ERROR(sparams_.ensure(m, ep));
  BALLAST_RETURN_IF_ERROR(sout_.ensure(m, ep));
  BALLAST_RETURN_IF_ERROR(top_ids_.ensure(static_cast<size_t>(m) * kMaxTopLogprobs, ep));
  BALLAST_RETURN_IF_ERROR(top_lps_.ensure(static_cast<size_t>(m) * kMaxTopLogprobs, ep));
  BALLAST_RETURN_IF_ERROR(pen_ids_.ensure(std::max<size_t>(pen_ids_h_.size(), 1024), ep));
  BALLAST_RETURN_IF_ERROR(pen_counts_.ensure(std::max<size_t>(pen_counts_h_.size(), 1024), ep));
  BALLAST_RETURN_IF_ERROR(bias_ids_.ensure(std::max<size_t>(bias_ids_h_.size(), 256), ep));
  BALLAST_RETURN_IF_ERROR(bias_vals_.ensure(std::max<size_t>(bias_vals_h_.size(), 256), ep));
  return Status();
}

// The vocabulary mask lives in one device buffer (its pointer is in captured graphs);
// it is uploaded again only when it changes. Masks are immutable while a model serves
// (the audit's shared vector), so the same vector (address, data, size) means the same
// content; a fresh vector is compared in full before it is uploaded again.
Status CudaBackend::set_valid(const std::vector<uint8_t>* valid) {
  vmask_ = valid != nullptr && !valid->empty();
  if (!vmask_) return Status();
  if (valid == valid_src_ && valid->data() == valid_data_ && valid->size() == valid_h_.size()) return Status();
  valid_src_ = valid;
  valid_data_ = valid->data();
  if (valid_h_.size() == valid->size() && std::memcmp(valid_h_.data(), valid->data(), valid->size()) == 0)
    return Status();
  valid_h_.clear();
  BALLAST_RETURN_IF_ERROR(valid_.ensure(valid->size(), &epoch_));
  CU_RETURN(cudaMemcpyAsync(valid_.p, valid->data(), valid->size(), cudaMemcpyHostToDevice, d_.stream));
  valid_h_ = *valid;
  return Status();
}

// Buffers that depend on the vocabulary size V (known once a forward issued its logits op).
Status CudaBackend::size_for_vocab(int m, int64_t V, Tail tail, const std::vector<uint8_t>* valid) {
  if (m == 0) return Status();
  if (V <= 0) return error(ErrorCode::kInternal, "CUDA backend: logits rows requested but the head has no rows");
  if (vmask_ && static_cast<int64_t>(valid->size()) < V)
    return error(ErrorCode::kInternal, "vocabulary mask has " + std::to_string(valid->size()) + " entries for " +
                                           std::to_string(V) + " logits");
  BALLAST_RETURN_IF_ERROR(logits_.ensure(static_cast<size_t>(m) * V, &epoch_));
  if (tail == Tail::kSampleWork) BALLAST_RETURN_IF_ERROR(work_.ensure(static_cast<size_t>(m) * V, &epoch_));
  return Status();
}

// Enqueues the step's uploads (before any capture: they are not part of a graph).
Status CudaBackend::upload_step(const StepIndex& st, Tail tail) {
  d_.arena = arena_.p;
  d_.arena_bytes = arena_.n;
  d_.counters = counters_.p;
  d_.n_counters = counters_.n;
  d_.logits = logits_.p;
  d_.logits_elems = logits_.n;
  CU_RETURN(cudaMemcpyAsync(idx_.p, host_, st.total * 4, cudaMemcpyHostToDevice, d_.stream));
  if (tail == Tail::kSample || tail == Tail::kSampleWork) {
    auto up = [&](void* dst, const void* src, size_t bytes) -> Status {
      if (bytes) CU_RETURN(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, d_.stream));
      return Status();
    };
    BALLAST_RETURN_IF_ERROR(up(sparams_.p, sp_.data(), sp_.size() * sizeof(SampleRowParams)));
    BALLAST_RETURN_IF_ERROR(up(pen_ids_.p, pen_ids_h_.data(), pen_ids_h_.size() * 4));
    BALLAST_RETURN_IF_ERROR(up(pen_counts_.p, pen_counts_h_.data(), pen_counts_h_.size() * 4));
    BALLAST_RETURN_IF_ERROR(up(bias_ids_.p, bias_ids_h_.data(), bias_ids_h_.size() * 4));
    BALLAST_RETURN_IF_ERROR(up(bias_vals_.p, bias_vals_h_.data(), bias_vals_h_.size() * 4));
  }
  CU_RETURN(cudaMemsetAsync(d_.flags, 0, sizeof(ErrorFlags), d_.stream));
  return Status();
}

// After the LM head: ids (and log-probabilities, top lists) per logits row. Stream work
// only: capturable.
Status CudaBackend::launch_tail(int m, int64_t V, Tail tail) {
  if (m == 0 || tail == Tail::kNone) return Status();
  const uint8_t* mask = vmask_ ? valid_.p : nullptr;
  const int v = static_cast<int>(V);
  if (tail == Tail::kGreedy) {
    LAUNCH("greedy_rows", greedy_rows(d_.logits, m, v, mask, ids_.p, lps_.p, gscratch_.p, d_.stream));
  } else {
    LAUNCH("sample_rows", sample_rows(d_.logits, m, v, mask, sparams_.p, pen_ids_.p, pen_counts_.p, bias_ids_.p,
                                      bias_vals_.p, tail == Tail::kSampleWork ? work_.p : nullptr, sout_.p, top_ids_.p,
                                      top_lps_.p, d_.stream));
  }
  return Status();
}

namespace {
Status non_finite() {
  return error(ErrorCode::kNumericalError, "non-finite logits (NaN/Inf) among the valid ids");
}
Status no_token() { return error(ErrorCode::kInternal, "no valid token to sample"); }
}  // namespace

// Reads the results back, waits for the step, and maps the device error flags and the
// per-row statuses.
Status CudaBackend::finish(int m, int64_t V, Tail tail, const backend::LogitsRequest& req, backend::StepResult& out) {
  cudaStream_t s = d_.stream;
  if (m > 0 && tail == Tail::kGreedy) {
    ids_h_.resize(m);
    lps_h_.resize(m);
    CU_RETURN(cudaMemcpyAsync(ids_h_.data(), ids_.p, m * 4, cudaMemcpyDeviceToHost, s));
    CU_RETURN(cudaMemcpyAsync(lps_h_.data(), lps_.p, m * 4, cudaMemcpyDeviceToHost, s));
  } else if (m > 0 && tail != Tail::kNone) {
    sout_h_.resize(m);
    CU_RETURN(cudaMemcpyAsync(sout_h_.data(), sout_.p, m * sizeof(SampleRowOut), cudaMemcpyDeviceToHost, s));
    if (want_top_) {
      top_ids_h_.resize(static_cast<size_t>(m) * kMaxTopLogprobs);
      top_lps_h_.resize(top_ids_h_.size());
      CU_RETURN(cudaMemcpyAsync(top_ids_h_.data(), top_ids_.p, top_ids_h_.size() * 4, cudaMemcpyDeviceToHost, s));
      CU_RETURN(cudaMemcpyAsync(top_lps_h_.data(), top_lps_.p, top_lps_h_.size() * 4, cudaMemcpyDeviceToHost, s));
    }
  }
  if (m > 0 && req.return_logits) {
    out.logits.resize(static_cast<size_t>(m) * V);
    CU_RETURN(cudaMemcpyAsync(out.logits.data(), d_.logits, out.logits.size() * 4, cudaMemcpyDeviceToHost, s));
  }
  CU_RETURN(cudaMemcpyAsync(flags_h_, d_.flags, sizeof(ErrorFlags), cudaMemcpyDeviceToHost, s));
  cudaError_t e = cudaStreamSynchronize(s);
  if (profiling()) prof_collect();
  if (e != cudaSuccess)
    return error(ErrorCode::kInternal, std::string("CUDA step failed: ") + cudaGetErrorString(e) +
                                           " (rerun with --debug-sync to name the kernel)");
  if (flags_h_->bad_token)
    return error(ErrorCode::kInvalidTokenId, std::to_string(flags_h_->bad_token) + " token id(s) outside the embedding");
  if (flags_h_->bad_position)
    return error(ErrorCode::kContextLengthExceeded,
                 std::to_string(flags_h_->bad_position) + " position(s) outside the learned position table");
  if (flags_h_->bad_kv_slot)
    return error(ErrorCode::kInternal, "KV block table entry out of range (" + std::to_string(flags_h_->bad_kv_slot) + ")");
  if (tail == Tail::kNone) return Status();
  out.rows.assign(m, {});
  for (int r = 0; r < m; ++r) {
    auto& row = out.rows[r];
    if (tail == Tail::kGreedy) {
      row.sample.id = ids_h_[r];
      if (ids_h_[r] >= 0) {
        row.sample.logprob = lps_h_[r];
      } else {
        // -1: a valid logit was NaN/Inf, or no id is valid at all.
        const bool any_valid = !vmask_ || std::any_of(req.valid->begin(), req.valid->begin() + V, [](uint8_t b) { return b != 0; });
        row.status = any_valid ? non_finite() : no_token();
      }
      continue;
    }
    const SampleRowOut& o = sout_h_[r];
    row.sample.id = o.status == kSampleOk ? o.id : -1;
    if (o.status != kSampleOk) {
      row.status = o.status == kSampleNonFinite ? non_finite() : no_token();
      continue;
    }
    row.sample.logprob = o.logprob;
    if (want_top_)
      for (int j = 0; j < std::min(o.n_top, sp_[r].top_logprobs); ++j) {
        const size_t k = static_cast<size_t>(r) * kMaxTopLogprobs + j;
        if (top_ids_h_[k] >= 0) row.sample.top.emplace_back(top_ids_h_[k], top_lps_h_[k]);
      }
  }
  return Status();
}

}  // namespace ballast::cuda

#endif  // BALLAST_HAVE_CUDA
