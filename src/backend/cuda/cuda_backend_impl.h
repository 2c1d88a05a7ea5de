// The CUDA backend: bf16 weights and a paged bf16 KV pool in device memory; a step is
// the architecture's forward issued as ops (cuda_ops.h), then the logits chain on the
// GPU (greedy_rows / sample_rows). Decode-only steps replay CUDA graphs.
// Split over cuda_backend.cpp (setup, weights, KV pool, run, graphs) and cuda_step.cpp
// (index tables, the logits chain tail, results). Include only under BALLAST_HAVE_CUDA.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_context.h"
#include "backend/cuda/sampling_kernels.h"

namespace ballast::cuda {

class CudaBackend final : public backend::Backend {
 public:
  explicit CudaBackend(const backend::BackendOptions& o) : opts_(o) {}
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;
  Status init();

  std::string name() const override { return "cuda"; }
  Result<backend::WeightId> add_matrix(const backend::MatrixSource& m) override;
  Result<backend::WeightId> add_vector(std::span<const float> v) override;
  using backend::Backend::add_rope;
  Result<backend::RopeId> add_rope(const backend::RopeTable& t) override;
  int64_t rows(backend::WeightId w) const override;
  Result<int64_t> init_kv(const backend::KvLayout& layout, int64_t want) override;
  Status run(const backend::StepPlan& plan, const Forward& forward, const backend::LogitsRequest& req,
             const backend::StepOptions& opts, backend::StepResult& out) override;

 private:
  // What runs after the LM head (part of a captured graph).
  enum class Tail { kNone, kGreedy, kSample, kSampleWork };
  // Decode graphs, keyed by (tail and mask present, tokens, block-table width, cross-table
  // width (0: none), the forward's op fingerprint).
  using GraphKey = std::tuple<int, int, int, int, uint64_t>;
  struct GraphEntry {
    cudaGraphExec_t exec;
    uint64_t epoch;  // buffer epoch it was captured under
  };

  // cuda_backend.cpp
  template <class T>
  Status alloc(T** p, size_t n, const std::string& what);
  Status upload_part(const backend::MatrixPart& part, int64_t cols, bf16* dst, const std::string& name);
  GraphEntry* find_graph(const GraphKey& key);
  Status capture(const GraphKey& key, const StepIndex& st, const Forward& forward, Tail tail, const OpsRecord& rec);
  Status size_activations(const OpsRecord& rec);
  void clear_graphs();

  // cuda_step.cpp
  Status build_index(const backend::StepPlan& p, StepIndex& st);
  Status prepare_tail(const backend::LogitsRequest& req, int m, Tail& tail);
  Status set_valid(const std::vector<uint8_t>* valid);
  Status size_for_vocab(int m, int64_t V, Tail tail, const std::vector<uint8_t>* valid);
  Status upload_step(const StepIndex& st, Tail tail);
  Status launch_tail(int m, int64_t V, Tail tail);
  Status finish(int m, int64_t V, Tail tail, const backend::LogitsRequest& req, backend::StepResult& out);

  backend::BackendOptions opts_;
  DeviceState d_;
  bool use_graphs_ = true;        // BALLAST_CUDA_GRAPHS=0: off
  std::vector<void*> allocs_;     // weights, vectors, rope tables, cuBLAS workspace, flags
  bf16* kv_pool_ = nullptr;       // all layers' K and V
  ErrorFlags* flags_h_ = nullptr; // pinned copy of d_.flags
  void* host_ = nullptr;          // pinned staging of the index upload
  size_t host_bytes_ = 0;
  uint64_t epoch_ = 0;            // bumped by every reallocation of a buffer a graph uses
  std::map<GraphKey, GraphEntry> graphs_;
  // Dry-pass results of decode-shaped steps by (forward id, tail and mask, tokens,
  // block-table width, cross-table width): a replayed step needs only its id checks.
  using DryKey = std::tuple<const void*, int, int, int, int>;
  std::map<DryKey, OpsRecord> dry_cache_;

  // Step buffers (device).
  DevBuf<unsigned char> arena_;
  DevBuf<int> counters_;
  DevBuf<float> logits_;
  DevBuf<int32_t> idx_;
  // Greedy tail.
  DevBuf<int32_t> ids_;
  DevBuf<float> lps_;
  DevBuf<unsigned char> gscratch_;
  // Sampling tail: per-row params, penalty / bias lists, work rows, results.
  DevBuf<SampleRowParams> sparams_;
  DevBuf<SampleRowOut> sout_;
  DevBuf<int32_t> top_ids_, pen_ids_, pen_counts_, bias_ids_;
  DevBuf<float> top_lps_, bias_vals_, work_;
  bool want_top_ = false;
  std::vector<SampleRowParams> sp_;
  std::vector<int32_t> pen_ids_h_, pen_counts_h_, bias_ids_h_;
  std::vector<float> bias_vals_h_;
  // Results (host).
  std::vector<int32_t> ids_h_, top_ids_h_;
  std::vector<float> lps_h_, top_lps_h_;
  std::vector<SampleRowOut> sout_h_;
  // Vocabulary mask: uploaded when its content changes.
  DevBuf<uint8_t> valid_;
  std::vector<uint8_t> valid_h_;
  const std::vector<uint8_t>* valid_src_ = nullptr;  // the mask last seen (see set_valid)
  const uint8_t* valid_data_ = nullptr;
  bool vmask_ = false;
  // Host scratch of build_index.
  std::vector<int32_t> row_ids_;
  std::vector<PrefillTile> tiles_;
  std::vector<uint8_t> seen_;
  std::vector<int32_t> rope_len_;  // each token's sequence length (StepPlan::rope_lengths)
};

}  // namespace ballast::cuda
