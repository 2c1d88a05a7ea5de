// The CPU backend: weights as views of the mapped files (zero copy; fused q|k|v and
// gate|up stay separate parts), a paged KV pool in lazily committed memory, fp32
// activations, the ops of backend/ops.h executed at once, and the logits chain on the host.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/packed.h"
#include "core/thread_pool.h"

namespace ballast::cpu {

struct Matrix {
  std::vector<WeightView> parts;  // stacked by rows
  int64_t rows = 0, cols = 0;
  std::shared_ptr<void> owned;    // random weights
  PackedWeight packed;            // all parts as panels (default mode, AVX-512 VNNI); empty otherwise
};

class CpuBackend : public backend::Backend {
 public:
  CpuBackend(const backend::BackendOptions& o, std::shared_ptr<ThreadPool> pool);
  ~CpuBackend() override;
  std::string name() const override { return "cpu"; }
  Result<backend::WeightId> add_matrix(const backend::MatrixSource& m) override;
  Result<backend::WeightId> add_vector(std::span<const float> v) override;
  using backend::Backend::add_rope;
  Result<backend::RopeId> add_rope(const backend::RopeTable& t) override;
  int64_t rows(backend::WeightId w) const override;
  Result<int64_t> init_kv(const backend::KvLayout& layout, int64_t want) override;
  int64_t uniform_step_tokens() const override;
  Status run(const backend::StepPlan& plan, const Forward& forward, const backend::LogitsRequest& req,
             const backend::StepOptions& opts, backend::StepResult& out) override;

  // For the ops.
  ThreadPool& pool() { return *pool_; }
  const Matrix& matrix(backend::WeightId w) const { return mats_[w]; }
  const std::vector<float>& vec(backend::WeightId w) const { return vecs_[w - kVectorBase]; }
  const backend::RopeTable& rope(backend::RopeId r) const { return ropes_[r]; }
  // y (n, rows) = x (n, cols) @ w^T.
  void matmul(backend::WeightId w, const float* x, int64_t n, float* y);
  // Layer l's K or V pool: (blocks * 16, row) elements, IEEE half floats when kv_f16()
  // (the default: half the bytes decode streams per token) else float (--exact).
  void* k_pool(int64_t l) { return kv_ + (2 * l) * layer_bytes(); }
  void* v_pool(int64_t l) { return kv_ + (2 * l + 1) * layer_bytes(); }
  bool kv_f16() const { return kv_f16_; }
  const backend::KvLayout& kv_layout() const { return layout_; }
  int64_t kv_blocks() const { return blocks_; }
  std::vector<float>& logits() { return logits_; }
  // The ops' tensor buffers: reused by every step, so a decode step allocates nothing.
  std::vector<std::vector<float>>& tensor_storage() { return tensors_; }

  static constexpr backend::WeightId kVectorBase = 1 << 24;  // vector ids live above matrix ids

 private:
  int64_t layer_bytes() const { return blocks_ * backend::kKvBlockTokens * layout_.row() * (kv_f16_ ? 2 : 4); }
  backend::BackendOptions opts_;
  std::shared_ptr<ThreadPool> pool_;
  std::vector<Matrix> mats_;
  std::vector<std::vector<float>> vecs_;
  std::vector<backend::RopeTable> ropes_;
  backend::KvLayout layout_;
  int64_t blocks_ = 0;
  uint8_t* kv_ = nullptr;  // mmap'd: committed page by page as blocks are first written
  bool kv_f16_ = false;
  size_t kv_bytes_ = 0;
  std::vector<float> logits_;  // (m, head rows) of the current step
  std::vector<float> scratch_;
  std::vector<std::vector<float>> tensors_;
};

// Runs one step's forward on the CPU (cpu_ops.cpp).
Status run_cpu_forward(CpuBackend& be, const backend::StepPlan& plan, const backend::Backend::Forward& forward,
                       const backend::StepOptions& opts);

}  // namespace ballast::cpu
