// The op interface on the GPU: bf16 activations, fp32 accumulation, an fp32 residual
// stream, tensors in a bump arena. Two modes over the same code path:
//   dry:  no launch; allocates (offsets only), checks shapes and ids, records what the
//         step needs (OpsRecord), so the backend sizes its buffers before the real run;
//   real: enqueues kernels on the backend's stream (possibly under CUDA graph capture).
// The same forward issues the same allocations in both, so a captured graph's pointers
// are the dry run's offsets in the arena.
//
// Fusions, decided per op from the tensors' states:
//   - RMSNorm (no bias) is lazy: norm() returns a tensor "pending norm of x"; a linear /
//     linear_glu / linear_add routed to the GEMV (n <= gemv_route_max_tokens(): single-token
//     decode by default) fuses it into the GEMV prologue (and the GEMV also stores the
//     normed rows, so the tensor is then materialized); add(residual, pending
//     norm of a bf16 tensor) is one kernel (sandwich post-norms); anything else runs the
//     norm kernel first. A tensor about to be modified in place (add, linear_add, attention)
//     first materializes every pending norm that reads it.
//   - linear(.., bias) leaves the bias pending: attention passes it to qkv_post,
//     other consumers add it first.
//   - linear_add / linear_glu on the GEMV route: the residual add / the GLU is the GEMV
//     epilogue; otherwise cuBLAS into a temporary, then an add / glu kernel.
#pragma once
#include <string>
#include <vector>

#include "backend/ops.h"
#include "backend/cuda/cuda_context.h"

namespace ballast::cuda {

class CudaOps final : public backend::Ops {
 public:
  CudaOps(DeviceState& d, const StepIndex& st, bool dry) : d_(d), st_(st), dry_(dry) { ts_.reserve(64); }

  backend::Tensor embed(backend::WeightId table, float scale) override;
  backend::Tensor embed_positions(backend::WeightId table) override;
  backend::Tensor norm(backend::Tensor x, const backend::Norm& n) override;
  backend::Tensor linear(backend::Tensor x, backend::WeightId w, backend::WeightId bias) override;
  void linear_add(backend::Tensor x, backend::WeightId w, backend::Tensor residual, backend::WeightId bias) override;
  backend::Tensor linear_glu(backend::Tensor x, backend::WeightId gate_up, backend::Act act) override;
  backend::Tensor activation(backend::Tensor x, backend::Act act) override;
  void add(backend::Tensor residual, backend::Tensor y) override;
  backend::Tensor attention(backend::Tensor qkv, const backend::AttentionSpec& a) override;
  void store_kv(backend::Tensor kv, int layer) override;
  void logits(backend::Tensor x, const backend::Norm& final_norm, backend::WeightId head, float softcap) override;
  void check(backend::Tensor, int64_t) override {}  // no cheap check on the GPU
  Status status() const override { return status_; }

  const OpsRecord& record() const { return rec_; }

 protected:
  int64_t mark() const override { return static_cast<int64_t>(ts_.size()); }
  void release(int64_t mark) override;

 private:
  enum class DT : uint8_t { kF32, kBf16 };
  struct TInfo {
    void* p = nullptr;  // device data (null in dry mode)
    int64_t rows = 0, cols = 0;
    DT dt = DT::kBf16;
    size_t arena_before = 0;  // arena top before this tensor: release() returns to it
    // Pending RMSNorm: p (bf16) does not hold the values yet; they are
    // rmsnorm(ts_[norm_src]) * norm_w.
    bool ready = true;
    int norm_src = -1;
    const float* norm_w = nullptr;
    float eps = 0;
    const float* bias = nullptr;  // pending bias (cols), not yet added to p
    bool clobbered = false;       // rewritten in place by attention (qkv_post): unusable after
    // Deferred residual add (large batches): p (f32) still lacks `delta` (bf16, same shape);
    // the next RMSNorm of p fuses the add (add_rmsnorm), any other reader adds it first.
    void* delta = nullptr;        // the step-long delta buffer of an embedding residual
    bool delta_pending = false;
  };
  // The X operand of a matmul: bf16 rows, or the fused RMSNorm prologue over an f32 tensor.
  struct MatIn {
    const bf16* x = nullptr;
    const float* xf = nullptr;
    const float* norm_w = nullptr;
    float eps = 0;
    bf16* xs_out = nullptr;
    int fused = -1;  // tensor materialized by the fused GEMV
  };
  // Restores the arena top when an op's temporaries go out of scope.
  struct Temps {
    CudaOps& o;
    size_t top;
    explicit Temps(CudaOps& ops) : o(ops), top(ops.top_) {}
    ~Temps() { o.top_ = top; }
  };

  Result<backend::Tensor> embed_(backend::WeightId table, float scale);
  Result<backend::Tensor> embed_positions_(backend::WeightId table);
  Result<backend::Tensor> norm_(backend::Tensor x, const backend::Norm& n);
  Result<backend::Tensor> linear_(backend::Tensor x, backend::WeightId w, backend::WeightId bias);
  Status linear_add_(backend::Tensor x, backend::WeightId w, backend::Tensor residual, backend::WeightId bias);
  Result<backend::Tensor> linear_glu_(backend::Tensor x, backend::WeightId gate_up, backend::Act act);
  Result<backend::Tensor> activation_(backend::Tensor x, backend::Act act);
  Status add_(backend::Tensor residual, backend::Tensor y);
  Result<backend::Tensor> attention_(backend::Tensor qkv, const backend::AttentionSpec& a);
  Status attend_(const backend::AttentionSpec& a, const bf16* qkv, bf16* out, const bf16* k, const bf16* v,
                 const float* rel);
  Result<backend::Tensor> cross_attention_(int qi, const backend::AttentionSpec& a, const float* rel);
  Status store_kv_(backend::Tensor kv, int layer);
  Status logits_(backend::Tensor x, const backend::Norm& final_norm, backend::WeightId head, float softcap);

  template <class... A>
  void fp(A... a);
  backend::Tensor done(Result<backend::Tensor> r);
  void done(const Status& s);

  Result<void*> alloc(size_t bytes);
  Result<int> new_tensor(int64_t rows, int64_t cols, DT dt);
  Result<int> get(backend::Tensor t, const char* op) const;
  Result<const WeightRec*> matrix(backend::WeightId w, const char* op) const;
  Result<const float*> vec(backend::WeightId w, int64_t n, const char* op) const;  // null for kNoWeight
  Status materialize(int id);
  Status before_write(int id);
  Result<MatIn> mat_in(int id, int64_t K, bool may_fuse);
  bool small(int64_t n, int64_t K) const;
  Status gemm_into(const MatIn& in, const WeightRec& w, int n, bf16* y);

  DeviceState& d_;
  const StepIndex& st_;
  const bool dry_;
  Status status_;
  OpsRecord rec_;
  std::vector<TInfo> ts_;
  size_t top_ = 0;
};

}  // namespace ballast::cuda
