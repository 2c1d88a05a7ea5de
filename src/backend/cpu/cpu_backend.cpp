// CPU backend: weights, KV pool, step driver and the host logits chain.
#include "backend/cpu/cpu_backend.h"

#include <cstdlib>
#include <string>

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/mapped_file.h"
#include "core/quant.h"

namespace ballast::cpu {

CpuBackend::CpuBackend(const backend::BackendOptions& o, std::shared_ptr<ThreadPool> pool)
    : opts_(o), pool_(std::move(pool)) {}

CpuBackend::~CpuBackend() {
  if (kv_) munmap(kv_, kv_bytes_);
}

Result<backend::WeightId> CpuBackend::add_matrix(const backend::MatrixSource& m) {
  Matrix mat;
  mat.rows = m.rows;
  mat.cols = m.cols;
  if (m.random) {
    // bf16 uniform(-a, a), std 0.02, from a counter hash of (seed, index): the formula of
    // the CUDA fill (random.cu), so both backends hold the same random weights.
    auto buf = std::shared_ptr<uint16_t[]>(new uint16_t[static_cast<size_t>(m.rows * m.cols)]);
    const float a = 0.02f * std::sqrt(3.0f);
    const int64_t n = m.rows * m.cols;
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const uint64_t r = backend::chain_mix64(m.seed ^ backend::chain_mix64(static_cast<uint64_t>(i)));
        const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
        buf[i] = fp32_to_bf16((2.0f * u - 1.0f) * a);
      }
    });
    mat.parts.push_back({DType::kBF16, m.rows, m.cols, reinterpret_cast<const uint8_t*>(buf.get())});
    mat.owned = buf;
  } else {
    for (const auto& p : m.parts) mat.parts.push_back({p.dtype, p.rows, m.cols, p.data});
    mat.owned = std::const_pointer_cast<void>(m.keep);
    // Default mode: one panel copy of all parts for the integer kernels (fused q|k|v
    // and gate|up become one matmul).
    if (!matmul_exact() && packed_supported()) {
      if (!pack_weight(mat.parts, mat.packed, pool_.get())) {
        mat.packed = PackedWeight();
      } else {
        // The panels replace the file's pages for matmuls; embedding lookups re-read
        // single rows from the file when they need them.
        for (const auto& p : mat.parts) release_mapped_pages(p.data, p.row_bytes() * static_cast<size_t>(p.rows));
      }
    }
  }
  mats_.push_back(std::move(mat));
  return static_cast<backend::WeightId>(mats_.size() - 1);
}

Result<backend::WeightId> CpuBackend::add_vector(std::span<const float> v) {
  vecs_.emplace_back(v.begin(), v.end());
  return static_cast<backend::WeightId>(kVectorBase + vecs_.size() - 1);
}

Result<backend::RopeId> CpuBackend::add_rope(const backend::RopeTable& t) {
  if (t.inv_freq.empty() || (!t.inv_freq_long.empty() && t.inv_freq_long.size() != t.inv_freq.size()))
    return error(ErrorCode::kInvalidArgument, "add_rope: " + std::to_string(t.inv_freq.size()) + " frequencies, " +
                                                  std::to_string(t.inv_freq_long.size()) + " long ones");
  ropes_.push_back(t);
  return static_cast<backend::RopeId>(ropes_.size() - 1);
}

int64_t CpuBackend::rows(backend::WeightId w) const {
  if (w >= kVectorBase) return static_cast<int64_t>(vecs_[w - kVectorBase].size());
  return w >= 0 && w < static_cast<int64_t>(mats_.size()) ? mats_[w].rows : 0;
}

Result<int64_t> CpuBackend::init_kv(const backend::KvLayout& layout, int64_t want) {
  // Half-float K/V for quantized models in the default mode (decode reads the whole span
  // every token, so its bytes are what long contexts cost; llama.cpp's default too). Float
  // checkpoints keep float K/V, as their matmuls stay in fp32; --exact keeps float
  // everywhere. BALLAST_CPU_KV=f32|f16 overrides (comparisons).
  const char* kv_env = std::getenv("BALLAST_CPU_KV");
  const std::string kv_mode = kv_env ? kv_env : "";
  bool quantized = false;
  for (const auto& m : mats_)
    for (const auto& part : m.parts)
      if (part.dtype != DType::kF32 && part.dtype != DType::kF16 && part.dtype != DType::kBF16) quantized = true;
  const bool f16 = kv_mode == "f16" || (kv_mode != "f32" && !matmul_exact() && quantized);
  const int64_t per_block = layout.bytes_per_block(f16 ? 2 : 4);
  if (want <= 0) want = std::max<int64_t>(1, (opts_.kv_ram_bytes > 0 ? opts_.kv_ram_bytes : int64_t(8) << 30) / per_block);
  if (opts_.kv_blocks > 0) want = opts_.kv_blocks;
  if (kv_ && layout.n_layers == layout_.n_layers && layout.row() == layout_.row() && blocks_ >= want && f16 == kv_f16_)
    return blocks_;
  if (kv_) munmap(kv_, kv_bytes_);
  kv_ = nullptr;
  // Address space only: pages are committed when first written, so a large pool costs
  // nothing until sequences use it.
  kv_bytes_ = static_cast<size_t>(per_block) * want;
  void* p = mmap(nullptr, kv_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return error(ErrorCode::kResourceExhausted, "KV cache: cannot reserve " + std::to_string(kv_bytes_ >> 20) + " MiB");
  kv_ = static_cast<uint8_t*>(p);
  kv_f16_ = f16;
  layout_ = layout;
  blocks_ = want;
  return blocks_;
}

int64_t CpuBackend::uniform_step_tokens() const {
  // Prompt attention runs as tiles from 8 queries (attention.cpp) and decode attention as
  // key chunks: a query's result depends on which of the two computed it.
  int64_t n = 8;
  for (const auto& m : mats_) {
    if (m.packed.data && !matmul_exact() && packed_supported()) continue;  // panels: one path for every n
    for (const auto& p : m.parts) n = std::max(n, matmul_uniform_tokens(p.dtype));
  }
  return n;
}

void CpuBackend::matmul(backend::WeightId w, const float* x, int64_t n, float* y) {
  const Matrix& m = mats_[w];
  if (m.packed.data && !matmul_exact() && packed_supported()) {
    packed_matmul(m.packed, x, n, y, m.rows, pool_.get());
    return;
  }
  if (m.parts.size() == 1) {
    cpu::matmul(m.parts[0], x, n, y, *pool_);
    return;
  }
  if (n == 1) {  // one row: each part's output is a contiguous slice
    int64_t off = 0;
    for (const auto& p : m.parts) {
      cpu::matmul(p, x, 1, y + off, *pool_);
      off += p.rows;
    }
    return;
  }
  int64_t off = 0;
  for (const auto& p : m.parts) {
    scratch_.resize(static_cast<size_t>(n * p.rows));
    cpu::matmul(p, x, n, scratch_.data(), *pool_);
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(y + t * m.rows + off, scratch_.data() + t * p.rows, static_cast<size_t>(p.rows) * 4);
    off += p.rows;
  }
}

Status CpuBackend::run(const backend::StepPlan& plan, const Forward& forward, const backend::LogitsRequest& req,
                       const backend::StepOptions& opts, backend::StepResult& out) {
  if (plan.size() == 0) return error(ErrorCode::kInvalidArgument, "empty step");
  if (!kv_) return error(ErrorCode::kInternal, "KV pool not initialized");
  if (plan.positions.size() != plan.size() || plan.seq_row.size() != plan.size() ||
      plan.block_tables.size() != static_cast<size_t>(plan.n_seqs) * plan.max_blocks)
    return error(ErrorCode::kInternal, "step plan: inconsistent sizes");
  for (int32_t r : plan.logit_rows)
    if (r < 0 || r >= static_cast<int32_t>(plan.size())) return error(ErrorCode::kInternal, "step plan: logit row out of range");
  for (size_t i = 0; i < plan.size(); ++i) {
    if (plan.seq_row[i] < 0 || plan.seq_row[i] >= plan.n_seqs || plan.positions[i] < 0 ||
        plan.positions[i] >= static_cast<int64_t>(plan.max_blocks) * backend::kKvBlockTokens)
      return error(ErrorCode::kInternal, "step plan: token " + std::to_string(i) + " (position " +
                                             std::to_string(plan.positions[i]) + ") outside its block table");
    const int32_t b = plan.block_of(static_cast<int64_t>(i));
    if (b < 0 || b >= blocks_)
      return error(ErrorCode::kInternal, "KV block table entry " + std::to_string(b) + " out of range (pool of " +
                                             std::to_string(blocks_) + " blocks)");
  }
  if (plan.cross_max_blocks > 0 || !plan.cross_len.empty()) {
    if (plan.cross_len.size() != static_cast<size_t>(plan.n_seqs) ||
        plan.cross_tables.size() != static_cast<size_t>(plan.n_seqs) * plan.cross_max_blocks)
      return error(ErrorCode::kInternal, "step plan: inconsistent cross-attention tables");
    for (int32_t r = 0; r < plan.n_seqs; ++r) {
      const int32_t len = plan.cross_len[r];
      if (len <= 0 || len > plan.cross_max_blocks * backend::kKvBlockTokens)
        return error(ErrorCode::kInternal, "step plan: cross length " + std::to_string(len) + " outside its table");
      for (int32_t j = 0; j < (len + backend::kKvBlockTokens - 1) / backend::kKvBlockTokens; ++j) {
        const int32_t b = plan.cross_tables[static_cast<size_t>(r) * plan.cross_max_blocks + j];
        if (b < 0 || b >= blocks_)
          return error(ErrorCode::kInternal, "cross block table entry " + std::to_string(b) + " out of range");
      }
    }
  }
  BALLAST_RETURN_IF_ERROR(run_cpu_forward(*this, plan, forward, opts));
  const int64_t m = static_cast<int64_t>(plan.logit_rows.size());
  const int64_t V = m > 0 ? static_cast<int64_t>(logits_.size()) / m : 0;
  out.rows.clear();
  out.logits.clear();
  if (req.return_logits) out.logits = logits_;
  if (!req.rows.empty()) {
    if (static_cast<int64_t>(req.rows.size()) != m)
      return error(ErrorCode::kInternal, std::to_string(req.rows.size()) + " sampling rows for " + std::to_string(m) +
                                             " logits rows");
    out.rows.resize(m);
    for (int64_t r = 0; r < m; ++r) {
      auto res = backend::run_chain(std::span<float>(logits_.data() + r * V, V), req.valid, req.rows[r]);
      if (res.ok()) out.rows[r].sample = std::move(res.value());
      else out.rows[r].status = res.status();
    }
  }
  return Status();
}

}  // namespace ballast::cpu

namespace ballast::backend {

std::unique_ptr<Backend> create_cpu_backend(const BackendOptions& o, std::shared_ptr<ThreadPool> pool) {
  return std::make_unique<cpu::CpuBackend>(o, std::move(pool));
}

}  // namespace ballast::backend
