// A backend: holds weights, RoPE tables and a pool of KV blocks, and runs steps (the
// architecture's forward, issued as ops, then the logits chain where the logits are).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "backend/step.h"
#include "core/dtype.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace ballast::backend {

// A matrix (rows, cols) as stored in a file: row-major, `dtype` may be a GGUF block type.
struct MatrixPart {
  DType dtype = DType::kF32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
};
// A weight matrix made of parts stacked by rows (fused q|k|v, gate|up), or random.
struct MatrixSource {
  std::string name;               // for errors
  std::vector<MatrixPart> parts;  // empty when random
  int64_t rows = 0, cols = 0;     // total
  bool random = false;            // uniform(-a, a) with std 0.02 (speed presets)
  uint64_t seed = 0;
  std::shared_ptr<const void> keep;  // owner of converted part data (a backend that keeps views holds it)
};

// A RoPE table: inverse frequencies (rot_dim/2). LongRoPE adds a second set, used for every
// token of a sequence longer than long_after tokens (StepPlan::rope_lengths: the whole prompt
// during a chunked prefill), and a multiplier on cos and sin.
struct RopeTable {
  std::vector<float> inv_freq;       // (rot_dim/2)
  std::vector<float> inv_freq_long;  // empty, or (rot_dim/2)
  int64_t long_after = 0;            // the model's original context length
  float scale = 1.0f;                // cos and sin are multiplied by it (LongRoPE's attention factor)
};

struct BackendOptions {
  int64_t kv_blocks = 0;             // 0: sized by the backend
  double kv_memory_fraction = 0.85;  // CUDA: of the device memory left after the weights
  int64_t kv_ram_bytes = 0;          // CPU: 0 = 8 GiB of address space, committed as used
  bool debug_sync = false;           // CUDA: synchronize and check after every kernel
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  virtual Result<WeightId> add_matrix(const MatrixSource& m) = 0;
  virtual Result<WeightId> add_vector(std::span<const float> v) = 0;
  virtual Result<RopeId> add_rope(const RopeTable& t) = 0;
  Result<RopeId> add_rope(std::span<const float> inv_freq) {  // (rot_dim/2), plain RoPE
    RopeTable t;
    t.inv_freq.assign(inv_freq.begin(), inv_freq.end());
    return add_rope(t);
  }
  virtual int64_t rows(WeightId w) const = 0;

  // Allocates the KV pool; returns its size in blocks (the engine's block manager manages
  // them). `want` 0: the backend's default sizing.
  virtual Result<int64_t> init_kv(const KvLayout& layout, int64_t want) = 0;

  // Steps of at least this many tokens compute every token the same way whatever their
  // size (up to float summation order); smaller ones may take another path (CPU default
  // mode: 8-bit activations below the fp32 GEMM threshold). The prefix cache keeps only K/V
  // computed in such steps and recomputes at least this many tokens after a hit, so a hit
  // gives what a whole-prompt prefill gives.
  virtual int64_t uniform_step_tokens() const { return 1; }

  using Forward = std::function<Status(Ops&)>;
  // One step: validates ids (kInvalidTokenId before anything runs), runs `forward`, then
  // the logits chain for req.rows. A backend serves one model: `forward` must issue the
  // same ops for steps of the same shape (CUDA replays captured graphs keyed by shape).
  virtual Status run(const StepPlan& plan, const Forward& forward, const LogitsRequest& req,
                     const StepOptions& opts, StepResult& out) = 0;
};

// The CPU backend computes on `pool`'s threads.
std::unique_ptr<Backend> create_cpu_backend(const BackendOptions& o, std::shared_ptr<ThreadPool> pool);
// --device cuda; an error naming why when the build or the machine has no usable GPU.
Result<std::unique_ptr<Backend>> create_cuda_backend(const BackendOptions& o);

}  // namespace ballast::backend
