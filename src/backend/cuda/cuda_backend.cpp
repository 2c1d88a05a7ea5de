// The CUDA backend (see cuda_backend_impl.h): device setup, weight upload (bf16 as is,
// other dtypes dequantized on the host, random weights generated on the device), the KV
// pool, and run(): dry run, buffer sizing, then the forward launched directly or
// captured / replayed as a CUDA graph. Compiled with CUDA only; otherwise
// create_cuda_backend names why there is no GPU backend.
#include "backend/cuda/cuda_backend.h"

#include "backend/backend.h"
#include "backend/logits_chain.h"

#if BALLAST_HAVE_CUDA
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "backend/cuda/cublas_api.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_ops.h"
#include "core/dequant.h"
#include "core/thread_pool.h"

namespace ballast::cuda {

namespace {
// BALLAST_CUDA_HOST_TIMING=1: mean host microseconds per step phase, printed at exit.
struct HostTiming {
  bool on = env_on("BALLAST_CUDA_HOST_TIMING");
  double t[6] = {0, 0, 0, 0, 0, 0};
  long steps = 0;
  ~HostTiming() {
    if (!on || steps == 0) return;
    const char* names[6] = {"index+tail", "dry pass", "size+upload", "launch/replay", "finish (wait)", "total"};
    for (int i = 0; i < 6; ++i) std::fprintf(stderr, "host timing: %-14s %8.1f us/step\n", names[i], t[i] / steps);
  }
};
HostTiming g_timing;
double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

using backend::kKvBlockTokens;

Status cuda_available() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0)
    return error(ErrorCode::kUnsupported, std::string("--device cuda: no usable CUDA device (") +
                                              (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
  return Status();
}

CudaBackend::~CudaBackend() {
  if (d_.stream) cudaStreamSynchronize(d_.stream);
  clear_graphs();
  for (void* p : allocs_) cudaFree(p);
  if (kv_pool_) cudaFree(kv_pool_);
  if (host_) cudaFreeHost(host_);
  if (flags_h_) cudaFreeHost(flags_h_);
  if (d_.blas) blas_destroy(d_.blas);
  if (d_.stream) cudaStreamDestroy(d_.stream);
}

template <class T>
Status CudaBackend::alloc(T** p, size_t n, const std::string& what) {
  const size_t bytes = std::max<size_t>(n, 1) * sizeof(T);
  cudaError_t e = cudaMalloc(reinterpret_cast<void**>(p), bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free allocation error
    return error(ErrorCode::kResourceExhausted, "--device cuda: cannot allocate " + std::to_string(bytes >> 20) +
                                                    " MiB for " + what + ": " + cudaGetErrorString(e));
  }
  allocs_.push_back(*p);
  return Status();
}

Status CudaBackend::init() {
  set_debug_sync(opts_.debug_sync);
  BALLAST_RETURN_IF_ERROR(cuda_available());
  d_.no_flash = env_on("BALLAST_CUDA_NO_FLASH");
  d_.no_decode_attn = env_on("BALLAST_CUDA_NO_DECODE_ATTN");
  d_.no_fused_gemv = env_on("BALLAST_CUDA_NO_FUSED_GEMV");
  const char* g = std::getenv("BALLAST_CUDA_GRAPHS");
  use_graphs_ = !(g && std::strcmp(g, "0") == 0);
  CU_RETURN(cudaStreamCreateWithFlags(&d_.stream, cudaStreamNonBlocking));
  if (std::string blas_err; !cublas_load(&blas_err)) return error(ErrorCode::kUnsupported, blas_err);
  if (blas_create(&d_.blas) != CUBLAS_STATUS_SUCCESS) return error(ErrorCode::kInternal, "cublasCreate failed");
  blas_set_math_mode(d_.blas, CUBLAS_DEFAULT_MATH);
  // A fixed workspace keeps cuBLAS from allocating while a CUDA graph is captured.
  unsigned char* ws = nullptr;
  BALLAST_RETURN_IF_ERROR(alloc(&ws, size_t(32) << 20, "the cuBLAS workspace"));
  if (blas_set_workspace(d_.blas, ws, size_t(32) << 20) != CUBLAS_STATUS_SUCCESS)
    return error(ErrorCode::kInternal, "cublasSetWorkspace failed");
  blas_set_stream(d_.blas, d_.stream);
  BALLAST_RETURN_IF_ERROR(alloc(&d_.flags, 1, "error flags"));
  CU_RETURN(cudaMemset(d_.flags, 0, sizeof(ErrorFlags)));
  CU_RETURN(cudaHostAlloc(&flags_h_, sizeof(ErrorFlags), cudaHostAllocDefault));
  return Status();
}

// ---- weights ----

// Dequantizes (or widens) a part to bf16 in slabs of rows through a host buffer, rows in
// parallel for large parts (a quantized 8B model is billions of elements).
Status CudaBackend::upload_part(const backend::MatrixPart& part, int64_t cols, bf16* dst, const std::string& name) {
  const int64_t rows = part.rows;
  if (rows == 0) return Status();
  if (!part.data) return error(ErrorCode::kInternal, name + ": a matrix part has no data");
  if (part.dtype == DType::kBF16) {
    CU_RETURN(cudaMemcpy(dst, part.data, static_cast<size_t>(rows * cols) * 2, cudaMemcpyHostToDevice));
    return Status();
  }
  if (!dequantize_supported(part.dtype))
    return error(ErrorCode::kUnsupported, name + ": dtype " + dtype_name(part.dtype) + " cannot be converted to bf16");
  const auto rb = row_bytes(part.dtype, static_cast<uint64_t>(cols));
  if (!rb)
    return error(ErrorCode::kFormatError, name + ": " + std::to_string(cols) + " columns are not a multiple of the " +
                                              dtype_name(part.dtype) + " block");
  const int64_t slab = std::max<int64_t>(1, (int64_t(16) << 20) / cols);  // ~32 MiB of bf16 per copy
  std::vector<uint16_t> buf(static_cast<size_t>(std::min(rows, slab) * cols));
  std::unique_ptr<ThreadPool> pool;
  if (rows * cols >= (int64_t(1) << 22)) pool = std::make_unique<ThreadPool>(0);
  for (int64_t r0 = 0; r0 < rows; r0 += slab) {
    const int64_t nr = std::min(slab, rows - r0);
    auto convert = [&](int64_t b, int64_t e) {
      std::vector<float> f(static_cast<size_t>(cols));
      for (int64_t r = b; r < e; ++r) {
        dequantize_row(part.dtype, part.data + static_cast<size_t>(r0 + r) * *rb, f.data(), cols);
        fp32_to_bf16_row(f.data(), buf.data() + r * cols, cols);
      }
    };
    if (pool) pool->parallel_for(nr, convert, 16);
    else convert(0, nr);
    CU_RETURN(cudaMemcpy(dst + r0 * cols, buf.data(), static_cast<size_t>(nr * cols) * 2, cudaMemcpyHostToDevice));
  }
  return Status();
}

Result<backend::WeightId> CudaBackend::add_matrix(const backend::MatrixSource& m) {
  if (m.rows <= 0 || m.cols <= 0 || m.rows > INT_MAX || m.cols > INT_MAX)
    return error(ErrorCode::kInvalidArgument, m.name + ": matrix shape (" + std::to_string(m.rows) + ", " +
                                                  std::to_string(m.cols) + ") not supported on the GPU");
  bf16* p = nullptr;
  const size_t n = static_cast<size_t>(m.rows * m.cols);
  BALLAST_RETURN_IF_ERROR(alloc(&p, n, "weight " + m.name));
  if (m.random) {
    // uniform(-a, a) with std 0.02 (HF initializer_range), generated where it is used.
    fill_uniform_bf16(p, static_cast<int64_t>(n), 0.02f * std::sqrt(3.0f), m.seed, d_.stream);
    const char* msg = check_launch("fill_uniform_bf16");
    if (*msg) return error(ErrorCode::kInternal, std::string("CUDA ") + msg);
  } else {
    int64_t total = 0;
    for (const auto& part : m.parts) total += part.rows;
    if (total != m.rows)
      return error(ErrorCode::kInvalidArgument, m.name + ": parts hold " + std::to_string(total) + " rows, expected " +
                                                    std::to_string(m.rows));
    int64_t row0 = 0;
    for (const auto& part : m.parts) {
      BALLAST_RETURN_IF_ERROR(upload_part(part, m.cols, p + row0 * m.cols, m.name));
      row0 += part.rows;
    }
  }
  d_.weights.push_back({p, m.rows, m.cols, true});
  return static_cast<backend::WeightId>(d_.weights.size() - 1);
}

Result<backend::WeightId> CudaBackend::add_vector(std::span<const float> v) {
  float* p = nullptr;
  BALLAST_RETURN_IF_ERROR(alloc(&p, v.size(), "a vector"));
  if (!v.empty()) CU_RETURN(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  d_.weights.push_back({p, static_cast<int64_t>(v.size()), 1, false});
  return static_cast<backend::WeightId>(d_.weights.size() - 1);
}

Result<backend::RopeId> CudaBackend::add_rope(const backend::RopeTable& t) {
  const auto& inv_freq = t.inv_freq;
  if (inv_freq.empty() || inv_freq.size() > 128)
    return error(ErrorCode::kUnsupported, "--device cuda: a RoPE table of " + std::to_string(inv_freq.size()) +
                                              " frequencies (1 to 128: rotary dims <= 256)");
  if (!t.inv_freq_long.empty() && t.inv_freq_long.size() != inv_freq.size())
    return error(ErrorCode::kInvalidArgument, "add_rope: " + std::to_string(inv_freq.size()) + " frequencies, " +
                                                  std::to_string(t.inv_freq_long.size()) + " long ones");
  RopeRec r;
  r.n_half = static_cast<int>(inv_freq.size());
  r.long_after = static_cast<int>(std::clamp<int64_t>(t.long_after, 0, INT_MAX));
  r.scale = t.scale;
  BALLAST_RETURN_IF_ERROR(alloc(&r.inv_freq, inv_freq.size(), "a RoPE table"));
  CU_RETURN(cudaMemcpy(r.inv_freq, inv_freq.data(), inv_freq.size() * 4, cudaMemcpyHostToDevice));
  if (!t.inv_freq_long.empty()) {
    BALLAST_RETURN_IF_ERROR(alloc(&r.inv_freq_long, inv_freq.size(), "a RoPE table"));
    CU_RETURN(cudaMemcpy(r.inv_freq_long, t.inv_freq_long.data(), inv_freq.size() * 4, cudaMemcpyHostToDevice));
  }
  d_.ropes.push_back(r);
  return static_cast<backend::RopeId>(d_.ropes.size() - 1);
}

int64_t CudaBackend::rows(backend::WeightId w) const {
  return w >= 0 && w < static_cast<backend::WeightId>(d_.weights.size()) ? d_.weights[w].rows : 0;
}

// ---- KV pool ----

Result<int64_t> CudaBackend::init_kv(const backend::KvLayout& l, int64_t want) {
  if (l.n_layers <= 0 || l.n_kv_heads <= 0 || l.head_dim <= 0)
    return error(ErrorCode::kInvalidArgument, "init_kv: empty KV layout");
  if (l.head_dim % 2 != 0 || l.head_dim > 256)
    return error(ErrorCode::kUnsupported, "--device cuda: head_dim " + std::to_string(l.head_dim) +
                                              " not supported (even and <= 256)");
  // Weight uploads (cudaMemcpy from pageable memory may still be in DMA) and earlier steps
  // finish before the pool changes.
  CU_RETURN(cudaDeviceSynchronize());
  clear_graphs();
  ++epoch_;
  if (kv_pool_) cudaFree(kv_pool_);
  kv_pool_ = nullptr;
  d_.n_blocks = 0;
  const size_t block_bytes = static_cast<size_t>(l.bytes_per_block(2));
  int64_t blocks = want > 0 ? want : opts_.kv_blocks;
  if (blocks <= 0) {
    size_t free_b = 0, total_b = 0;
    CU_RETURN(cudaMemGetInfo(&free_b, &total_b));
    const size_t reserve = size_t(3) << 30;  // activations, logits, cuBLAS workspace
    const double usable = free_b > reserve ? static_cast<double>(free_b - reserve) * opts_.kv_memory_fraction : 0.0;
    blocks = static_cast<int64_t>(usable / static_cast<double>(block_bytes));
  }
  blocks = std::min<int64_t>(blocks, INT32_MAX / kKvBlockTokens);  // slots are int32 on the device
  if (blocks < 1) return error(ErrorCode::kResourceExhausted, "--device cuda: no device memory left for the KV cache");
  cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&kv_pool_), static_cast<size_t>(blocks) * block_bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    kv_pool_ = nullptr;
    return error(ErrorCode::kResourceExhausted, "--device cuda: cannot allocate the KV cache (" + std::to_string(blocks) +
                                                    " blocks, " + std::to_string((blocks * block_bytes) >> 20) +
                                                    " MiB): " + cudaGetErrorString(e));
  }
  // Fresh memory may hold NaN bit patterns; attention tiles read (masked) unwritten rows.
  CU_RETURN(cudaMemset(kv_pool_, 0, static_cast<size_t>(blocks) * block_bytes));
  const size_t per = static_cast<size_t>(blocks) * l.n_kv_heads * kKvBlockTokens * l.head_dim;  // K or V of a layer
  d_.k_cache.resize(l.n_layers);
  d_.v_cache.resize(l.n_layers);
  for (int64_t i = 0; i < l.n_layers; ++i) {
    d_.k_cache[i] = kv_pool_ + (2 * i) * per;
    d_.v_cache[i] = kv_pool_ + (2 * i + 1) * per;
  }
  d_.kv = l;
  d_.n_blocks = blocks;
  return blocks;
}

// ---- steps ----

void CudaBackend::clear_graphs() {
  for (auto& [k, g] : graphs_) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
  dry_cache_.clear();
}

CudaBackend::GraphEntry* CudaBackend::find_graph(const GraphKey& key) {
  auto it = graphs_.find(key);
  if (it == graphs_.end()) return nullptr;
  if (it->second.epoch != epoch_) {  // a buffer it points into moved
    cudaGraphExecDestroy(it->second.exec);
    graphs_.erase(it);
    return nullptr;
  }
  return &it->second;
}

// The arena grows with headroom (each growth re-captures every graph); the split
// counters grow zeroed (the decode kernel leaves them zero).
Status CudaBackend::size_activations(const OpsRecord& rec) {
  if (rec.arena_peak > arena_.n) {
    size_t want = std::max(rec.arena_peak + rec.arena_peak / 4, arena_.n + arena_.n / 2);
    want = (want + (size_t(1) << 20) - 1) >> 20 << 20;
    BALLAST_RETURN_IF_ERROR(arena_.ensure(want, &epoch_));
  }
  if (rec.counters > counters_.n) BALLAST_RETURN_IF_ERROR(counters_.ensure(rec.counters, &epoch_, d_.stream, true));
  return Status();
}

Status CudaBackend::capture(const GraphKey& key, const StepIndex& st, const Forward& forward, Tail tail,
                            const OpsRecord& rec) {
  if (graphs_.size() >= 64) clear_graphs();
  CU_RETURN(cudaStreamBeginCapture(d_.stream, cudaStreamCaptureModeRelaxed));
  CudaOps ops(d_, st, false);
  Status fs = forward(ops);
  Status s = !ops.status().ok() ? ops.status() : fs;
  if (s.ok()) s = launch_tail(st.m, rec.logits_cols, tail);
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(d_.stream, &g);
  if (!s.ok()) {
    if (g) cudaGraphDestroy(g);
    return s;
  }
  if (e != cudaSuccess) return error(ErrorCode::kInternal, std::string("CUDA graph capture: ") + cudaGetErrorString(e));
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  if (e != cudaSuccess) return error(ErrorCode::kInternal, std::string("CUDA graph instantiate: ") + cudaGetErrorString(e));
  graphs_[key] = GraphEntry{exec, epoch_};
  CU_RETURN(cudaGraphLaunch(exec, d_.stream));
  return Status();
}

Status CudaBackend::run(const backend::StepPlan& plan, const Forward& forward, const backend::LogitsRequest& req,
                        const backend::StepOptions& opts, backend::StepResult& out) {
  out.rows.clear();
  out.logits.clear();
  // Token masks (grammars) are made on the host per sequence: such a step brings its logits
  // back and runs the one chain there (backend/cpu/logits_chain.cpp), as the CPU backend does.
  if (std::any_of(req.rows.begin(), req.rows.end(), [](const backend::SampleRow& r) { return r.token_mask != nullptr; })) {
    backend::LogitsRequest raw;
    raw.valid = req.valid;
    raw.return_logits = true;
    BALLAST_RETURN_IF_ERROR(run(plan, forward, raw, opts, out));
    const size_t m = req.rows.size();
    if (out.logits.empty() || out.logits.size() % m != 0)
      return error(ErrorCode::kInternal, "CUDA backend: no logits for the host chain");
    const size_t v = out.logits.size() / m;
    out.rows.assign(m, {});
    std::vector<float> row;
    for (size_t r = 0; r < m; ++r) {
      row.assign(out.logits.begin() + r * v, out.logits.begin() + (r + 1) * v);
      auto res = backend::run_chain(row, req.valid, req.rows[r]);
      if (res.ok()) out.rows[r].sample = std::move(res.value());
      else out.rows[r].status = res.status();
    }
    if (!req.return_logits) out.logits.clear();
    return Status();
  }
  if (d_.n_blocks == 0) return error(ErrorCode::kInternal, "CUDA backend: run() before init_kv()");
  const double t0 = g_timing.on ? now_us() : 0;
  StepIndex st;
  BALLAST_RETURN_IF_ERROR(build_index(plan, st));
  Tail tail = Tail::kNone;
  BALLAST_RETURN_IF_ERROR(prepare_tail(req, st.m, tail));
  BALLAST_RETURN_IF_ERROR(set_valid(req.valid));
  // Dry run, every step: checks every op (token ids included) before anything launches,
  // sizes the buffers (the real run then allocates the same arena offsets), and
  // fingerprints the op sequence, so a graph replays only the forward it was captured from.
  // Host work only (no launch, no sync).
  const double t1 = g_timing.on ? now_us() : 0;
  const bool graphable = st.decode_only && use_graphs_ && !debug_sync() && !profiling() && st.n <= 256;
  const DryKey dkey{opts.forward_id, static_cast<int>(tail) * 2 + (vmask_ ? 1 : 0), st.n, st.max_blocks,
                    st.cross_max_blocks};
  auto cached = graphable && opts.forward_id ? dry_cache_.find(dkey) : dry_cache_.end();
  OpsRecord rec;
  if (cached != dry_cache_.end()) {
    // Same forward, same shape: the same ops. Only the ids need checking.
    rec = cached->second;
    for (size_t i = 0; i < plan.tokens.size(); ++i)
      if (rec.embed_rows >= 0 && (plan.tokens[i] < 0 || plan.tokens[i] >= rec.embed_rows))
        return error(ErrorCode::kInvalidTokenId, "token id " + std::to_string(plan.tokens[i]) + " at position " +
                                                     std::to_string(i) + " is outside the embedding rows [0, " +
                                                     std::to_string(rec.embed_rows) + ")");
    for (size_t i = 0; i < plan.positions.size(); ++i)
      if (rec.position_rows >= 0 && plan.positions[i] >= rec.position_rows)
        return error(ErrorCode::kContextLengthExceeded, "position " + std::to_string(plan.positions[i]) +
                                                            " is beyond the model's " + std::to_string(rec.position_rows) +
                                                            " learned positions");
  } else {
    CudaOps dry(d_, st, true);
    Status fs = forward(dry);
    BALLAST_RETURN_IF_ERROR(dry.status());
    BALLAST_RETURN_IF_ERROR(fs);
    rec = dry.record();
    if (graphable && opts.forward_id) {
      if (dry_cache_.size() >= 256) dry_cache_.clear();
      dry_cache_[dkey] = rec;
    }
  }
  if (st.m > 0 && (tail != Tail::kNone || req.return_logits) && !rec.logits_called)
    return error(ErrorCode::kInternal, "CUDA backend: the forward issued no logits op");
  const double t2 = g_timing.on ? now_us() : 0;
  BALLAST_RETURN_IF_ERROR(size_for_vocab(st.m, rec.logits_cols, tail, req.valid));
  BALLAST_RETURN_IF_ERROR(size_activations(rec));
  // Decode steps replay a graph; --debug-sync and profiling need per-kernel launches.
  const GraphKey key{static_cast<int>(tail) * 2 + (vmask_ ? 1 : 0), st.n, st.max_blocks, st.cross_max_blocks,
                     rec.fingerprint};
  GraphEntry* g = graphable ? find_graph(key) : nullptr;
  BALLAST_RETURN_IF_ERROR(upload_step(st, tail));
  const double t3 = g_timing.on ? now_us() : 0;
  Status s;
  if (g) {
    cudaError_t e = cudaGraphLaunch(g->exec, d_.stream);
    if (e != cudaSuccess) s = error(ErrorCode::kInternal, std::string("cudaGraphLaunch: ") + cudaGetErrorString(e));
  } else if (graphable) {
    s = capture(key, st, forward, tail, rec);
  } else {
    CudaOps ops(d_, st, false);
    Status rs = forward(ops);
    s = !ops.status().ok() ? ops.status() : rs;
    if (s.ok()) s = launch_tail(st.m, rec.logits_cols, tail);
  }
  if (!s.ok()) {
    cudaStreamSynchronize(d_.stream);  // nothing in flight reads the staging buffers of the next step
    return s;
  }
  (void)opts;  // check_numerics: no cheap per-layer check on the GPU (Ops::check is a no-op)
  const double t4 = g_timing.on ? now_us() : 0;
  Status fin = finish(st.m, rec.logits_cols, tail, req, out);
  if (g_timing.on) {
    const double t5 = now_us();
    const double d[6] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0};
    for (int i = 0; i < 6; ++i) g_timing.t[i] += d[i];
    ++g_timing.steps;
  }
  return fin;
}

}  // namespace ballast::cuda

namespace ballast::backend {
Result<std::unique_ptr<Backend>> create_cuda_backend(const BackendOptions& o) {
  auto b = std::make_unique<cuda::CudaBackend>(o);
  BALLAST_RETURN_IF_ERROR(b->init());
  return std::unique_ptr<Backend>(std::move(b));
}
}  // namespace ballast::backend

#else  // no CUDA backend in this build

namespace ballast::cuda {
Status cuda_available() {
  return error(ErrorCode::kUnsupported, "--device cuda: this build has no CUDA backend (built without nvcc)");
}
}  // namespace ballast::cuda

namespace ballast::backend {
Result<std::unique_ptr<Backend>> create_cuda_backend(const BackendOptions&) { return cuda::cuda_available(); }
}  // namespace ballast::backend

#endif
