// Llama-family forward on the GPU: fused QKV and gate|up GEMMs, fused residual+RMSNorm,
// RoPE fused with the paged KV write, tensor-core prefill attention, on-GPU greedy.
// Compiled into ballast_lib only when the CUDA backend is built.
#include "backend/cuda/cuda_model.h"

#if BALLAST_HAVE_CUDA
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <unordered_map>

#include "core/quant.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/qkv_post.h"
#include "backend/cuda/sampling_kernels.h"
#include "model/layers/layers.h"

namespace ballast::cuda {

Status cuda_available() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0)
    return error(ErrorCode::kUnsupported, std::string("--device cuda: no usable CUDA device (") +
                                              (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
  return Status();
}

namespace {

#define CU_RETURN(expr)                                                                                  \
  do {                                                                                                   \
    cudaError_t e_ = (expr);                                                                             \
    if (e_ != cudaSuccess) return error(ErrorCode::kInternal, std::string(#expr) + ": " + cudaGetErrorString(e_)); \
  } while (0)
// Launch + check (a synchronize per kernel under --debug-sync / CUDA_LAUNCH_BLOCKING=1).
#define LAUNCH(name, expr)                                                             \
  do {                                                                                 \
    if (profiling()) prof_begin(stream_);                                              \
    expr;                                                                              \
    if (profiling()) prof_end(name, stream_);                                          \
    const char* m_ = check_launch(name);                                               \
    if (*m_) return error(ErrorCode::kInternal, std::string("CUDA ") + m_);            \
  } while (0)

template <class T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  // Grows to `want` elements; a reallocation bumps *epoch (captured graphs hold pointers).
  Status ensure(size_t want, uint64_t* epoch = nullptr) {
    if (want <= n) return Status();
    if (epoch) ++*epoch;
    if (p) cudaFree(p);
    p = nullptr;
    n = 0;
    CU_RETURN(cudaMalloc(&p, std::max<size_t>(want, 1) * sizeof(T)));
    n = want;
    return Status();
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

struct Layer {
  bf16 *wqkv = nullptr, *wo = nullptr, *wgu = nullptr, *wdown = nullptr;  // (qd+2kd, H), (H, qd), (2F, H), (H, F)
  float *ln1 = nullptr, *ln2 = nullptr;  // input norm; pre-MLP norm (Llama: post_attention_layernorm)
  float* bias = nullptr;                 // (qd + 2kd) q|k|v bias (Qwen2) or null
  float *q_norm = nullptr, *k_norm = nullptr;           // (hd) (Qwen3, Gemma 3) or null
  float *post_attn = nullptr, *post_ffw = nullptr;      // (H) Gemma 3 sandwich norms or null
  bool sliding = false;                                 // Gemma 3 local layer: window + local RoPE
};

class CudaModel : public model::Model {
 public:
  CudaModel(model::ModelConfig cfg, std::shared_ptr<const model::WeightSet> ws, CudaModelOptions o)
      : cfg_(std::move(cfg)), ws_(std::move(ws)), opts_(o) {}
  ~CudaModel() override {
    if (stream_) cudaStreamSynchronize(stream_);
    clear_graphs();
    for (void* p : allocs_) cudaFree(p);
    if (host_) cudaFreeHost(host_);
    if (flags_h_) cudaFreeHost(flags_h_);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  const model::ModelConfig& config() const override { return cfg_; }
  const model::WeightSet& weights() const override { return ws_ ? *ws_ : empty_; }
  int64_t embedding_rows() const override { return rows_; }
  int64_t head_rows() const override { return head_rows_; }
  bool tied() const override { return tied_; }
  bool host_kv() const override { return false; }
  bool has_device_greedy() const override { return true; }
  Status resize_embeddings(int64_t) override {
    return error(ErrorCode::kUnsupported, "--resize-embeddings is not supported with --device cuda");
  }
  void release_sequence(int32_t seq) override {
    auto it = seq_blocks_.find(seq);
    if (it == seq_blocks_.end()) return;
    for (int32_t b : it->second) free_blocks_.push_back(b);
    seq_blocks_.erase(it);
  }

  Status init_common(int64_t rows, int64_t head_rows, bool tied) {
    set_debug_sync(opts_.debug_sync);
    BALLAST_RETURN_IF_ERROR(cuda_available());
    const auto& c = cfg_;
    if (cfg_.arch != "llama" && cfg_.arch != "gemma3")
      return error(ErrorCode::kUnsupported, "--device cuda: architecture '" + cfg_.source_arch +
                                                "' is not implemented on the GPU yet (Llama family, Qwen2/3, Gemma 3)");
    gemma_ = cfg_.arch == "gemma3";
    if (c.final_logit_softcap > 0 || c.attn_logit_softcap > 0)
      return error(ErrorCode::kUnsupported, "--device cuda: logit soft-capping is not implemented on the GPU yet");
    if (c.head_dim % 2 != 0 || c.head_dim > 256 || c.hidden % 8 != 0 || c.ffn % 8 != 0 ||
        c.n_heads % c.n_kv_heads != 0)
      return error(ErrorCode::kUnsupported, "--device cuda: head_dim " + std::to_string(c.head_dim) + ", hidden " +
                                                std::to_string(c.hidden) + ", ffn " + std::to_string(c.ffn) +
                                                " not supported (hidden and ffn multiples of 8, head_dim even and <= 256)");
    rows_ = rows;
    head_rows_ = head_rows;
    tied_ = tied;
    CU_RETURN(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (cublasCreate(&blas_) != CUBLAS_STATUS_SUCCESS) return error(ErrorCode::kInternal, "cublasCreate failed");
    cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH);
    // A fixed workspace keeps cuBLAS from allocating while a CUDA graph is captured.
    void* ws = nullptr;
    BALLAST_RETURN_IF_ERROR(alloc(reinterpret_cast<unsigned char**>(&ws), int64_t(32) << 20));
    if (cublasSetWorkspace(blas_, ws, size_t(32) << 20) != CUBLAS_STATUS_SUCCESS)
      return error(ErrorCode::kInternal, "cublasSetWorkspace failed");
    cublasSetStream(blas_, stream_);
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    BALLAST_RETURN_IF_ERROR(alloc(&emb_, rows * H));
    head_ = emb_;
    if (!tied) BALLAST_RETURN_IF_ERROR(alloc(&head_, head_rows * H));
    BALLAST_RETURN_IF_ERROR(alloc(&final_norm_, H));
    layers_.resize(c.n_layers);
    for (auto& l : layers_) {
      BALLAST_RETURN_IF_ERROR(alloc(&l.wqkv, (qd + 2 * kd) * H));
      BALLAST_RETURN_IF_ERROR(alloc(&l.wo, H * qd));
      BALLAST_RETURN_IF_ERROR(alloc(&l.wgu, 2 * c.ffn * H));
      BALLAST_RETURN_IF_ERROR(alloc(&l.wdown, H * c.ffn));
      BALLAST_RETURN_IF_ERROR(alloc(&l.ln1, H));
      BALLAST_RETURN_IF_ERROR(alloc(&l.ln2, H));
      if (c.attn_bias) BALLAST_RETURN_IF_ERROR(alloc(&l.bias, qd + 2 * kd));
      if (c.qk_norm) {
        BALLAST_RETURN_IF_ERROR(alloc(&l.q_norm, c.head_dim));
        BALLAST_RETURN_IF_ERROR(alloc(&l.k_norm, c.head_dim));
      }
      if (gemma_) {
        BALLAST_RETURN_IF_ERROR(alloc(&l.post_attn, H));
        BALLAST_RETURN_IF_ERROR(alloc(&l.post_ffw, H));
      }
    }
    for (int64_t i = 0; i < c.n_layers; ++i)
      layers_[i].sliding = c.sliding_window > 0 && i < static_cast<int64_t>(c.layer_sliding.size()) && c.layer_sliding[i];
    for (int local = 0; local < 2; ++local) {
      auto inv = model::rope_inv_freq(local ? c.rope_local : c.rope, c.head_dim);
      inv.resize(c.head_dim / 2, 0.0f);
      float*& dst = local ? inv_freq_local_ : inv_freq_;
      BALLAST_RETURN_IF_ERROR(alloc(&dst, inv.size()));
      CU_RETURN(cudaMemcpy(dst, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
    }
    BALLAST_RETURN_IF_ERROR(alloc(&flags_d_, 1));
    CU_RETURN(cudaHostAlloc(&flags_h_, sizeof(ErrorFlags), cudaHostAllocDefault));
    return Status();
  }

  Status init_random(uint64_t seed) {
    const auto& c = cfg_;
    const float a = 0.02f * std::sqrt(3.0f);  // uniform with std 0.02 (HF initializer_range)
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    uint64_t s = seed * 1000003ull;
    fill_uniform_bf16(emb_, rows_ * H, a, ++s, stream_);
    if (!tied_) fill_uniform_bf16(head_, head_rows_ * H, a, ++s, stream_);
    const float one = static_cast<float>(1.0 - c.norm_offset);  // norms scale by offset + w = 1
    fill_const_f32(final_norm_, H, one, stream_);
    for (auto& l : layers_) {
      fill_uniform_bf16(l.wqkv, (qd + 2 * kd) * H, a, ++s, stream_);
      fill_uniform_bf16(l.wo, H * qd, a, ++s, stream_);
      fill_uniform_bf16(l.wgu, 2 * c.ffn * H, a, ++s, stream_);
      fill_uniform_bf16(l.wdown, H * c.ffn, a, ++s, stream_);
      for (float* w : {l.ln1, l.ln2, l.post_attn, l.post_ffw})
        if (w) fill_const_f32(w, H, one, stream_);
      for (float* w : {l.q_norm, l.k_norm})
        if (w) fill_const_f32(w, c.head_dim, one, stream_);
      if (l.bias) fill_const_f32(l.bias, qd + 2 * kd, 0.0f, stream_);
    }
    LAUNCH("fill_random", (void)0);
    CU_RETURN(cudaStreamSynchronize(stream_));
    return init_kv();
  }

  Status init_from_weights() {
    const auto& c = cfg_;
    const int64_t H = c.hidden, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim;
    const auto* emb = ws_->find("model.embed_tokens.weight");
    BALLAST_RETURN_IF_ERROR(upload(emb, emb_, 0));
    if (!tied_) BALLAST_RETURN_IF_ERROR(upload(ws_->find("lm_head.weight"), head_, 0));
    BALLAST_RETURN_IF_ERROR(upload_f32("model.norm.weight", final_norm_, H));
    auto L = [](int64_t l, const char* s) { return "model.layers." + std::to_string(l) + "." + s; };
    for (int64_t i = 0; i < c.n_layers; ++i) {
      auto& l = layers_[i];
      BALLAST_RETURN_IF_ERROR(upload(ws_->find(L(i, "self_attn.q_proj.weight")), l.wqkv, 0));
      BALLAST_RETURN_IF_ERROR(upload(ws_->find(L(i, "self_attn.k_proj.weight")), l.wqkv, qd * H));
      BALLAST_RETURN_IF_ERROR(upload(ws_->find(L(i, "self_attn.v_proj.weight")), l.wqkv, (qd + kd) * H));
      BALLAST_RETURN_IF_ERROR(upload(ws_->find(L(i, "self_attn.o_proj.weight")), l.wo, 0));
      BALLAST_RETURN_IF_ERROR(upload(ws_->find(L(i, "mlp.gate_proj.weight")), l.wgu, 0));
      BALLAST_RETURN_IF_ERROR(upload(ws_->find(L(i, "mlp.up_proj.weight")), l.wgu, c.ffn * H));
      BALLAST_RETURN_IF_ERROR(upload(ws_->find(L(i, "mlp.down_proj.weight")), l.wdown, 0));
      BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "input_layernorm.weight"), l.ln1, H));
      if (gemma_) {
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "pre_feedforward_layernorm.weight"), l.ln2, H));
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "post_attention_layernorm.weight"), l.post_attn, H));
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "post_feedforward_layernorm.weight"), l.post_ffw, H));
      } else {
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "post_attention_layernorm.weight"), l.ln2, H));
      }
      if (l.q_norm) {
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "self_attn.q_norm.weight"), l.q_norm, c.head_dim));
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "self_attn.k_norm.weight"), l.k_norm, c.head_dim));
      }
      if (l.bias) {
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "self_attn.q_proj.bias"), l.bias, qd));
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "self_attn.k_proj.bias"), l.bias + qd, kd));
        BALLAST_RETURN_IF_ERROR(upload_f32(L(i, "self_attn.v_proj.bias"), l.bias + qd + kd, kd));
      }
    }
    if (ws_->find("rope_freqs")) {
      BALLAST_ASSIGN_OR_RETURN(auto f, ws_->get_f32("rope_freqs", c.head_dim / 2));
      auto inv = model::rope_inv_freq(c.rope, c.head_dim);
      for (int64_t i = 0; i < c.head_dim / 2; ++i) inv[i] /= f[i];
      CU_RETURN(cudaMemcpy(inv_freq_, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
    }
    return init_kv();
  }

  Status forward(const model::Batch& b, engine::KvCache& kv, std::vector<float>& logits,
                 const model::ForwardOptions& opts) override {
    Step st;
    BALLAST_RETURN_IF_ERROR(prepare(b, st));
    vmask_ = nullptr;  // raw logits: no mask in this step's graph
    BALLAST_RETURN_IF_ERROR(execute(st, Tail::kLogits));
    logits.resize(static_cast<size_t>(st.m) * head_rows_);
    if (st.m > 0)
      CU_RETURN(cudaMemcpyAsync(logits.data(), logits_.p, logits.size() * 4, cudaMemcpyDeviceToHost, stream_));
    return finish_step();
  }

  bool has_device_sampler() const override { return true; }

  Status forward_sample(const model::Batch& b, engine::KvCache& kv, const std::vector<uint8_t>* valid,
                        const std::vector<model::DeviceSampleRow>& rows, std::vector<model::DeviceSampleResult>& out,
                        const model::ForwardOptions& opts) override {
    Step st;
    BALLAST_RETURN_IF_ERROR(prepare(b, st));
    if (static_cast<size_t>(st.m) != rows.size())
      return error(ErrorCode::kInternal, "forward_sample: " + std::to_string(rows.size()) + " sampling rows for " +
                                             std::to_string(st.m) + " logits rows");
    BALLAST_RETURN_IF_ERROR(set_valid(valid));
    // Per-row parameters and the penalty / bias lists (uploaded with the step).
    sp_.clear();
    pen_ids_h_.clear();
    pen_counts_h_.clear();
    bias_ids_h_.clear();
    bias_vals_h_.clear();
    bool need_work = false, want_top = false;
    for (const auto& r : rows) {
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
        append_penalty_list(r.prompt, p.repetition_penalty != 1.0 ? r.n_prompt : 0, r.generated, r.n_generated,
                            pen_ids_h_, pen_counts_h_, q);
      append_bias_list(p.logit_bias, bias_ids_h_, bias_vals_h_, q);
      need_work |= sample_row_needs_work(q);
      want_top |= q.top_logprobs > 0;
      sp_.push_back(q);
    }
    uint64_t* ep = &buf_epoch_;
    const int m = std::max(st.m, 1);
    BALLAST_RETURN_IF_ERROR(sparams_.ensure(m, ep));
    BALLAST_RETURN_IF_ERROR(sout_.ensure(m, ep));
    BALLAST_RETURN_IF_ERROR(top_ids_.ensure(static_cast<size_t>(m) * kMaxTopLogprobs, ep));
    BALLAST_RETURN_IF_ERROR(top_lps_.ensure(static_cast<size_t>(m) * kMaxTopLogprobs, ep));
    BALLAST_RETURN_IF_ERROR(pen_ids_.ensure(std::max<size_t>(pen_ids_h_.size(), 1024), ep));
    BALLAST_RETURN_IF_ERROR(pen_counts_.ensure(std::max<size_t>(pen_counts_h_.size(), 1024), ep));
    BALLAST_RETURN_IF_ERROR(bias_ids_.ensure(std::max<size_t>(bias_ids_h_.size(), 256), ep));
    BALLAST_RETURN_IF_ERROR(bias_vals_.ensure(std::max<size_t>(bias_vals_h_.size(), 256), ep));
    if (need_work) BALLAST_RETURN_IF_ERROR(work_.ensure(static_cast<size_t>(m) * head_rows_, ep));
    sample_work_ = need_work ? work_.p : nullptr;
    auto up = [&](void* dst, const void* src, size_t bytes) -> Status {
      if (bytes) CU_RETURN(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
      return Status();
    };
    BALLAST_RETURN_IF_ERROR(up(sparams_.p, sp_.data(), sp_.size() * sizeof(SampleRowParams)));
    BALLAST_RETURN_IF_ERROR(up(pen_ids_.p, pen_ids_h_.data(), pen_ids_h_.size() * 4));
    BALLAST_RETURN_IF_ERROR(up(pen_counts_.p, pen_counts_h_.data(), pen_counts_h_.size() * 4));
    BALLAST_RETURN_IF_ERROR(up(bias_ids_.p, bias_ids_h_.data(), bias_ids_h_.size() * 4));
    BALLAST_RETURN_IF_ERROR(up(bias_vals_.p, bias_vals_h_.data(), bias_vals_h_.size() * 4));
    BALLAST_RETURN_IF_ERROR(execute(st, need_work ? Tail::kSampleWork : Tail::kSample));
    sout_h_.resize(st.m);
    if (st.m > 0)
      CU_RETURN(cudaMemcpyAsync(sout_h_.data(), sout_.p, st.m * sizeof(SampleRowOut), cudaMemcpyDeviceToHost, stream_));
    if (want_top) {
      top_ids_h_.resize(static_cast<size_t>(st.m) * kMaxTopLogprobs);
      top_lps_h_.resize(top_ids_h_.size());
      CU_RETURN(cudaMemcpyAsync(top_ids_h_.data(), top_ids_.p, top_ids_h_.size() * 4, cudaMemcpyDeviceToHost, stream_));
      CU_RETURN(cudaMemcpyAsync(top_lps_h_.data(), top_lps_.p, top_lps_h_.size() * 4, cudaMemcpyDeviceToHost, stream_));
    }
    BALLAST_RETURN_IF_ERROR(finish_step());
    out.assign(st.m, {});
    for (int r = 0; r < st.m; ++r) {
      const auto& o = sout_h_[r];
      out[r].id = o.id;
      out[r].logprob = o.logprob;
      out[r].status = o.status == kSampleOk ? 0 : o.status == kSampleNonFinite ? 1 : 2;
      if (want_top)
        for (int j = 0; j < std::min(o.n_top, sp_[r].top_logprobs); ++j)
          if (top_ids_h_[r * kMaxTopLogprobs + j] >= 0)
            out[r].top.emplace_back(top_ids_h_[r * kMaxTopLogprobs + j], top_lps_h_[r * kMaxTopLogprobs + j]);
    }
    return Status();
  }

  Status forward_greedy(const model::Batch& b, engine::KvCache& kv, const std::vector<uint8_t>* valid,
                        std::vector<int32_t>& ids, std::vector<float>& logprobs,
                        const model::ForwardOptions& opts) override {
    Step st;
    BALLAST_RETURN_IF_ERROR(prepare(b, st));
    BALLAST_RETURN_IF_ERROR(set_valid(valid));
    BALLAST_RETURN_IF_ERROR(ids_.ensure(std::max(st.m, 1), &buf_epoch_));
    BALLAST_RETURN_IF_ERROR(lps_.ensure(std::max(st.m, 1), &buf_epoch_));
    BALLAST_RETURN_IF_ERROR(gscratch_.ensure(greedy_scratch_bytes(std::max(st.m, 1)), &buf_epoch_));
    BALLAST_RETURN_IF_ERROR(execute(st, Tail::kGreedy));
    ids.resize(st.m);
    logprobs.resize(st.m);
    if (st.m > 0) {
      CU_RETURN(cudaMemcpyAsync(ids.data(), ids_.p, st.m * 4, cudaMemcpyDeviceToHost, stream_));
      CU_RETURN(cudaMemcpyAsync(logprobs.data(), lps_.p, st.m * 4, cudaMemcpyDeviceToHost, stream_));
    }
    return finish_step();
  }

 private:
  // Uploads the vocabulary mask once per distinct vector (vmask_: null = all valid).
  Status set_valid(const std::vector<uint8_t>* valid) {
    vmask_ = nullptr;
    if (valid && static_cast<int64_t>(valid->size()) == head_rows_) {
      if (valid_src_ != valid || valid_version_ != valid->size()) {
        BALLAST_RETURN_IF_ERROR(valid_.ensure(valid->size(), &buf_epoch_));
        CU_RETURN(cudaMemcpyAsync(valid_.p, valid->data(), valid->size(), cudaMemcpyHostToDevice, stream_));
        valid_src_ = valid;
        valid_version_ = valid->size();
      }
      vmask_ = valid_.p;
    }
    return Status();
  }

  template <class T>
  Status alloc(T** p, int64_t n) {
    CU_RETURN(cudaMalloc(reinterpret_cast<void**>(p), std::max<int64_t>(n, 1) * sizeof(T)));
    allocs_.push_back(*p);
    return Status();
  }

  // Copies weight w (any stored dtype) as bf16 to dst + offset elements.
  Status upload(const model::Weight* w, bf16* dst, int64_t offset) {
    if (!w) return error(ErrorCode::kNotFound, "CUDA upload: a required tensor is missing");
    const int64_t n = w->n_elements();
    if (w->dtype == DType::kBF16) {
      CU_RETURN(cudaMemcpy(dst + offset, w->data, n * 2, cudaMemcpyHostToDevice));
      return Status();
    }
    const auto v = w->view();
    std::vector<float> row(v.cols);
    std::vector<bf16> out(static_cast<size_t>(n));
    for (int64_t r = 0; r < v.rows; ++r) {
      cpu::dequantize_row(v.dtype, v.row(r), row.data(), v.cols);
      for (int64_t i = 0; i < v.cols; ++i) out[r * v.cols + i] = __float2bfloat16(row[i]);
    }
    CU_RETURN(cudaMemcpy(dst + offset, out.data(), n * 2, cudaMemcpyHostToDevice));
    return Status();
  }
  Status upload_f32(const std::string& name, float* dst, int64_t n) {
    BALLAST_ASSIGN_OR_RETURN(auto v, ws_->get_f32(name, n));
    CU_RETURN(cudaMemcpy(dst, v.data(), n * 4, cudaMemcpyHostToDevice));
    return Status();
  }

  Status init_kv() {
    const auto& c = cfg_;
    block_elems_ = c.n_kv_heads * 16 * c.head_dim;  // per layer per block, K or V
    const size_t block_bytes = static_cast<size_t>(block_elems_) * 2 * 2 * c.n_layers;
    int64_t blocks = opts_.kv_blocks;
    if (blocks <= 0) {
      size_t free_b = 0, total_b = 0;
      CU_RETURN(cudaMemGetInfo(&free_b, &total_b));
      const size_t reserve = size_t(3) << 30;  // activations, logits, cuBLAS workspace
      const double usable = free_b > reserve ? (free_b - reserve) * opts_.kv_memory_fraction : 0.0;
      blocks = static_cast<int64_t>(usable / block_bytes);
    }
    if (blocks < 1) return error(ErrorCode::kResourceExhausted, "--device cuda: no device memory left for the KV cache");
    n_blocks_ = blocks;
    k_cache_.resize(c.n_layers);
    v_cache_.resize(c.n_layers);
    bf16* pool = nullptr;
    BALLAST_RETURN_IF_ERROR(alloc(&pool, static_cast<int64_t>(block_elems_) * 2 * c.n_layers * blocks));
    for (int64_t l = 0; l < c.n_layers; ++l) {
      k_cache_[l] = pool + (2 * l) * block_elems_ * blocks;
      v_cache_[l] = pool + (2 * l + 1) * block_elems_ * blocks;
    }
    free_blocks_.clear();
    for (int64_t i = blocks - 1; i >= 0; --i) free_blocks_.push_back(static_cast<int32_t>(i));
    return Status();
  }

  Status ensure_host(size_t bytes) {
    if (bytes <= host_bytes_) return Status();
    if (host_) cudaFreeHost(host_);
    host_ = nullptr;
    CU_RETURN(cudaHostAlloc(&host_, bytes * 2, cudaHostAllocDefault));
    host_bytes_ = bytes * 2;
    return Status();
  }

  // One step's layout: counts and offsets into the packed int32 index upload
  // tokens | pos | slot | seq_slot | logit_idx | row_ids | tiles | block table (n_slots, max_blocks).
  struct Step {
    int n = 0, m = 0, n_slots = 0, max_blocks = 1, max_ctx = 0, n_rows = 0, n_tiles = 0;
    int splits = 0;  // attention_decode key splits for the row tokens (0: attention_rows)
    size_t off_pos = 0, off_slot = 0, off_seq = 0, off_lidx = 0, off_rows = 0, off_tiles = 0, off_bt = 0, total = 0;
    bool gather = false;       // logits rows are not all rows: gather them first
    bool decode_only = false;  // one token per sequence, all want logits: graph-capturable
  };
  enum class Tail { kLogits, kGreedy, kSample, kSampleWork };

  // Validates ids, assigns KV blocks, builds and uploads the step's index tables, sizes
  // the step buffers. Decode-only steps round max_blocks up (to 16 blocks = 256
  // positions) so one captured graph serves many consecutive steps.
  Status prepare(const model::Batch& b, Step& st) {
    const auto& c = cfg_;
    const int n = static_cast<int>(b.size());
    if (n == 0) return error(ErrorCode::kInvalidArgument, "empty batch");
    for (int i = 0; i < n; ++i)
      if (b.tokens[i] < 0 || b.tokens[i] >= rows_)
        return error(ErrorCode::kInvalidTokenId, "token id " + std::to_string(b.tokens[i]) + " at position " +
                                                     std::to_string(i) + " is outside the embedding rows [0, " +
                                                     std::to_string(rows_) + ")");
    // Sequences of this step, their blocks and block-table rows.
    slot_of_.clear();
    seqs_.clear();
    need_.clear();
    for (int i = 0; i < n; ++i) {
      auto [it, inserted] = slot_of_.emplace(b.seqs[i], static_cast<int32_t>(seqs_.size()));
      if (inserted) {
        seqs_.push_back(b.seqs[i]);
        need_.push_back(0);
      }
      need_[it->second] = std::max(need_[it->second], b.positions[i] + 1);
      // A sequence id restarting at position 0 reuses its id (bench repetitions).
      if (b.positions[i] == 0 && inserted) release_sequence(b.seqs[i]);
    }
    int max_blocks = 1;
    blocks_of_.resize(seqs_.size());
    for (size_t s = 0; s < seqs_.size(); ++s) {
      auto& bl = seq_blocks_[seqs_[s]];
      const int64_t want = (need_[s] + 15) / 16;
      while (static_cast<int64_t>(bl.size()) < want) {
        if (free_blocks_.empty())
          return error(ErrorCode::kResourceExhausted, "GPU KV cache full (" + std::to_string(n_blocks_) + " blocks)");
        bl.push_back(free_blocks_.back());
        free_blocks_.pop_back();
      }
      blocks_of_[s] = &bl;
      max_blocks = std::max<int>(max_blocks, static_cast<int>(bl.size()));
    }
    // Logits rows, attention split: runs of >= 16 consecutive positions of one sequence
    // go to the tensor-core prefill kernel in tiles of 64; the rest to the row kernel.
    logit_idx_.clear();
    row_ids_.clear();
    tiles_.clear();
    int max_ctx = 0;
    for (int i = 0; i < n; ++i) {
      if (b.want_logits[i]) logit_idx_.push_back(i);
      max_ctx = std::max(max_ctx, b.positions[i] + 1);
    }
    const bool use_tiles = !no_flash_ &&
                           (c.head_dim == 64 || c.head_dim == 128 || c.head_dim == 256);
    for (int i = 0; i < n;) {
      int j = i + 1;
      while (j < n && b.seqs[j] == b.seqs[i] && b.positions[j] == b.positions[j - 1] + 1) ++j;
      if (use_tiles && j - i >= 16) {
        for (int t = i; t < j; t += 64)
          tiles_.push_back({t, std::min(64, j - t), slot_of_[b.seqs[i]], b.positions[t]});
      } else {
        for (int t = i; t < j; ++t) row_ids_.push_back(t);
      }
      i = j;
    }
    st.n = n;
    st.m = static_cast<int>(logit_idx_.size());
    st.n_slots = static_cast<int>(seqs_.size());
    st.n_rows = static_cast<int>(row_ids_.size());
    st.n_tiles = static_cast<int>(tiles_.size());
    st.decode_only = st.n_slots == n && st.m == n && tiles_.empty();
    if (st.decode_only) max_blocks = (max_blocks + 15) / 16 * 16;
    st.max_blocks = max_blocks;
    st.max_ctx = st.decode_only ? max_blocks * 16 : max_ctx;
    st.gather = st.m > 0 && (st.m != n || logit_idx_.back() != n - 1);
    // Flash-decoding for small batches (latency: splits over keys); the row kernel is
    // faster for large batches of decode rows (measured on H200: 207 vs 277 us at 256).
    if (st.n_rows > 0 && st.n_rows <= 32 && !no_decode_attn_ &&
        attention_decode_supported(static_cast<int>(c.head_dim), static_cast<int>(c.n_heads), static_cast<int>(c.n_kv_heads)))
      st.splits = attention_decode_splits(st.n_rows, static_cast<int>(c.n_kv_heads), st.max_ctx);
    st.off_pos = n;
    st.off_slot = 2 * n;
    st.off_seq = 3 * n;
    st.off_lidx = 4 * n;
    st.off_rows = st.off_lidx + st.m;
    st.off_tiles = st.off_rows + row_ids_.size();
    st.off_bt = st.off_tiles + 4 * tiles_.size();
    st.total = st.off_bt + static_cast<size_t>(st.n_slots) * max_blocks;
    BALLAST_RETURN_IF_ERROR(ensure_host(st.total * 4));
    int32_t* h = static_cast<int32_t*>(host_);
    for (int i = 0; i < n; ++i) {
      const int32_t s = slot_of_[b.seqs[i]];
      h[i] = b.tokens[i];
      h[st.off_pos + i] = b.positions[i];
      h[st.off_slot + i] = (*blocks_of_[s])[b.positions[i] / 16] * 16 + b.positions[i] % 16;
      h[st.off_seq + i] = s;
    }
    std::copy(logit_idx_.begin(), logit_idx_.end(), h + st.off_lidx);
    std::copy(row_ids_.begin(), row_ids_.end(), h + st.off_rows);
    std::memcpy(h + st.off_tiles, tiles_.data(), tiles_.size() * sizeof(PrefillTile));
    for (int s = 0; s < st.n_slots; ++s) {
      const auto& bl = *blocks_of_[s];
      int32_t* row = h + st.off_bt + static_cast<size_t>(s) * max_blocks;
      const int nb = static_cast<int>(bl.size());
      std::copy(bl.begin(), bl.end(), row);
      std::fill(row + nb, row + max_blocks, -1);
    }
    const int H = static_cast<int>(c.hidden), qd = static_cast<int>(c.n_heads * c.head_dim),
              kd = static_cast<int>(c.n_kv_heads * c.head_dim), F = static_cast<int>(c.ffn);
    uint64_t* ep = &buf_epoch_;
    BALLAST_RETURN_IF_ERROR(idx_.ensure(st.total, ep));
    BALLAST_RETURN_IF_ERROR(x_.ensure(static_cast<size_t>(n) * H, ep));
    BALLAST_RETURN_IF_ERROR(hn_.ensure(static_cast<size_t>(n) * H, ep));
    BALLAST_RETURN_IF_ERROR(delta_.ensure(static_cast<size_t>(n) * H, ep));
    BALLAST_RETURN_IF_ERROR(qkv_.ensure(static_cast<size_t>(n) * (qd + 2 * kd), ep));
    BALLAST_RETURN_IF_ERROR(att_.ensure(static_cast<size_t>(n) * qd, ep));
    BALLAST_RETURN_IF_ERROR(gu_.ensure(static_cast<size_t>(n) * 2 * F, ep));
    BALLAST_RETURN_IF_ERROR(act_.ensure(static_cast<size_t>(n) * F, ep));
    BALLAST_RETURN_IF_ERROR(sel_.ensure(static_cast<size_t>(std::max(st.m, 1)) * H, ep));
    BALLAST_RETURN_IF_ERROR(logits_.ensure(static_cast<size_t>(std::max(st.m, 1)) * head_rows_, ep));
    if (st.splits > 1) {
      BALLAST_RETURN_IF_ERROR(part_.ensure(static_cast<size_t>(st.n_rows) * c.n_heads * st.splits * (c.head_dim + 2), ep));
      const size_t nc = static_cast<size_t>(st.n_rows) * c.n_kv_heads;
      if (nc > counters_.n) {
        BALLAST_RETURN_IF_ERROR(counters_.ensure(nc, ep));
        CU_RETURN(cudaMemsetAsync(counters_.p, 0, nc * sizeof(int), stream_));
      }
    }
    CU_RETURN(cudaMemcpyAsync(idx_.p, h, st.total * 4, cudaMemcpyHostToDevice, stream_));
    CU_RETURN(cudaMemsetAsync(flags_d_, 0, sizeof(ErrorFlags), stream_));
    return Status();
  }

  // Runs a prepared step: decode-only steps replay a captured CUDA graph (one per
  // (tail, n, max_blocks); re-captured when a step buffer moved), others launch directly.
  Status execute(const Step& st, Tail tail) {
    const bool graphable = st.decode_only && use_graphs_ && !debug_sync() && !profiling() && st.n <= 256;
    if (!graphable) return enqueue(st, tail);
    const GraphKey key{static_cast<int>(tail) * 2 + (vmask_ != nullptr), st.n, st.max_blocks};
    auto it = graphs_.find(key);
    if (it != graphs_.end() && it->second.epoch != buf_epoch_) {
      cudaGraphExecDestroy(it->second.exec);
      graphs_.erase(it);
      it = graphs_.end();
    }
    if (it == graphs_.end()) {
      if (graphs_.size() >= 64) clear_graphs();
      CU_RETURN(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
      Status s = enqueue(st, tail);
      cudaGraph_t g = nullptr;
      cudaError_t e = cudaStreamEndCapture(stream_, &g);
      if (!s.ok()) {
        if (g) cudaGraphDestroy(g);
        return s;
      }
      if (e != cudaSuccess) return error(ErrorCode::kInternal, std::string("CUDA graph capture: ") + cudaGetErrorString(e));
      cudaGraphExec_t exec = nullptr;
      e = cudaGraphInstantiate(&exec, g, 0);
      cudaGraphDestroy(g);
      if (e != cudaSuccess) return error(ErrorCode::kInternal, std::string("CUDA graph instantiate: ") + cudaGetErrorString(e));
      it = graphs_.emplace(key, GraphEntry{exec, buf_epoch_}).first;
    }
    CU_RETURN(cudaGraphLaunch(it->second.exec, stream_));
    return Status();
  }

  // Launches the layers, the LM head for the logits rows into logits_ (m, head_rows) and
  // the tail (greedy ids). Only stream work: capturable.
  Status enqueue(const Step& st, Tail tail) {
    const auto& c = cfg_;
    const int n = st.n, m = st.m;
    const int32_t* d = idx_.p;
    const int H = static_cast<int>(c.hidden), qd = static_cast<int>(c.n_heads * c.head_dim),
              kd = static_cast<int>(c.n_kv_heads * c.head_dim), F = static_cast<int>(c.ffn);
    const float eps = static_cast<float>(c.rms_eps), off = static_cast<float>(c.norm_offset);
    const bool gelu = c.act == model::Activation::kGeluTanh;
    AttnArgs aa{};
    aa.qkv = qkv_.p;
    aa.pos = d + st.off_pos;
    aa.seq_slot = d + st.off_seq;
    aa.block_table = d + st.off_bt;
    aa.max_blocks = st.max_blocks;
    aa.n_blocks = n_blocks_;
    aa.n_heads = static_cast<int>(c.n_heads);
    aa.n_kv = static_cast<int>(c.n_kv_heads);
    aa.hd = static_cast<int>(c.head_dim);
    aa.scale = static_cast<float>(c.attn_scale > 0 ? c.attn_scale : 1.0 / std::sqrt(static_cast<double>(c.head_dim)));
    aa.window = 0;  // per layer
    aa.max_ctx = st.max_ctx;
    aa.out = att_.p;
    aa.flags = flags_d_;

    LAUNCH("embed", embed(emb_, rows_, H, d, n, static_cast<float>(c.embed_scale), x_.p, flags_d_, stream_));
    // Small batches (decode): RMSNorm fused into the GEMV prologue, the residual add into
    // its epilogue, the GLU into the gate|up GEMV: 5-6 kernels per layer.
    const bool small = n <= kGemvMaxTokens && !no_fused_gemv_ && !gemma_;
    auto attention = [&](int64_t l) -> Status {
      const Layer& ly = layers_[l];
      QkvPostArgs qa{};
      qa.qkv = qkv_.p;
      qa.n = n;
      qa.n_heads = aa.n_heads;
      qa.n_kv = aa.n_kv;
      qa.hd = aa.hd;
      qa.bias = ly.bias;
      qa.q_norm = ly.q_norm;
      qa.k_norm = ly.k_norm;
      qa.eps = eps;
      qa.norm_offset = off;
      qa.pos = d + st.off_pos;
      qa.inv_freq = ly.sliding ? inv_freq_local_ : inv_freq_;
      qa.interleaved = c.rope_layout == model::RopeLayout::kInterleaved;
      qa.slot = d + st.off_slot;
      qa.n_slots = n_blocks_ * 16;
      qa.k_cache = k_cache_[l];
      qa.v_cache = v_cache_[l];
      qa.flags = flags_d_;
      LAUNCH("qkv_post", qkv_post(qa, stream_));
      aa.k_cache = k_cache_[l];
      aa.v_cache = v_cache_[l];
      aa.window = ly.sliding ? static_cast<int>(c.sliding_window) : 0;
      if (st.n_tiles > 0)
        LAUNCH("attention_prefill", attention_prefill(aa, reinterpret_cast<const PrefillTile*>(d + st.off_tiles),
                                                      st.n_tiles, stream_));
      if (st.n_rows > 0) {
        AttnArgs ar = aa;
        ar.n = st.n_rows;
        ar.row_ids = st.n_rows == n ? nullptr : d + st.off_rows;
        if (st.splits > 0) {
          float* po = part_.p;
          float* pml = po ? po + static_cast<size_t>(st.n_rows) * c.n_heads * st.splits * c.head_dim : nullptr;
          LAUNCH("attention_decode", attention_decode(ar, st.splits, po, pml, counters_.p, stream_));
        } else {
          LAUNCH("attention_rows", attention_rows(ar, stream_));
        }
      }
      return Status();
    };
    if (small) {
      const GemvEpi glu = gelu ? GemvEpi::kGeGlu : GemvEpi::kSwiGlu;
      for (int64_t l = 0; l < c.n_layers; ++l) {
        const Layer& ly = layers_[l];
        LAUNCH("gemv_norm_qkv", gemv_small({ly.wqkv, qd + 2 * kd, H, nullptr, x_.p, ly.ln1, eps, off, n, qkv_.p},
                                           GemvEpi::kStoreBf16, stream_));
        BALLAST_RETURN_IF_ERROR(attention(l));
        LAUNCH("gemv_o_residual", gemv_small({ly.wo, H, qd, att_.p, nullptr, nullptr, 0.0f, 0.0f, n, x_.p},
                                             GemvEpi::kAddF32, stream_));
        LAUNCH("gemv_norm_gate_up_glu", gemv_small({ly.wgu, F, H, nullptr, x_.p, ly.ln2, eps, off, n, act_.p}, glu,
                                                   stream_));
        LAUNCH("gemv_down_residual", gemv_small({ly.wdown, H, F, act_.p, nullptr, nullptr, 0.0f, 0.0f, n, x_.p},
                                                GemvEpi::kAddF32, stream_));
      }
      LAUNCH("final_norm", rmsnorm(x_.p, final_norm_, n, H, eps, off, hn_.p, stream_));
    } else {
      // Llama: x += delta and the next norm fused (add_rmsnorm). Gemma 3: the sublayer
      // output is normed first (post-attention / post-FFN), then added, then the next norm.
      for (int64_t l = 0; l < c.n_layers; ++l) {
        const Layer& ly = layers_[l];
        if (l == 0) LAUNCH("rmsnorm", rmsnorm(x_.p, ly.ln1, n, H, eps, off, hn_.p, stream_));
        else if (!gemma_) LAUNCH("add_rmsnorm", add_rmsnorm(x_.p, delta_.p, ly.ln1, n, H, eps, off, hn_.p, stream_));
        LAUNCH("gemm_qkv", gemm_bf16(blas_, ly.wqkv, qd + 2 * kd, H, hn_.p, n, qkv_.p, stream_));
        BALLAST_RETURN_IF_ERROR(attention(l));
        LAUNCH("gemm_o", gemm_bf16(blas_, ly.wo, H, qd, att_.p, n, delta_.p, stream_));
        if (gemma_)
          LAUNCH("add_postnorm_rmsnorm", add_postnorm_rmsnorm(x_.p, delta_.p, ly.post_attn, ly.ln2, n, H, eps, off,
                                                              hn_.p, stream_));
        else
          LAUNCH("add_rmsnorm", add_rmsnorm(x_.p, delta_.p, ly.ln2, n, H, eps, off, hn_.p, stream_));
        LAUNCH("gemm_gate_up", gemm_bf16(blas_, ly.wgu, 2 * F, H, hn_.p, n, gu_.p, stream_));
        LAUNCH("swiglu", swiglu(gu_.p, n, F, gelu, act_.p, stream_));
        LAUNCH("gemm_down", gemm_bf16(blas_, ly.wdown, H, F, act_.p, n, delta_.p, stream_));
        if (gemma_) {
          const float* next = l + 1 < c.n_layers ? layers_[l + 1].ln1 : final_norm_;
          LAUNCH("add_postnorm_rmsnorm", add_postnorm_rmsnorm(x_.p, delta_.p, ly.post_ffw, next, n, H, eps, off, hn_.p,
                                                              stream_));
        }
      }
      if (!gemma_) LAUNCH("final_norm", add_rmsnorm(x_.p, delta_.p, final_norm_, n, H, eps, off, hn_.p, stream_));
    }
    if (m == 0) return Status();
    const bf16* sel = hn_.p;
    if (st.gather) {
      LAUNCH("gather_rows", gather_rows(hn_.p, H, d + st.off_lidx, m, sel_.p, stream_));
      sel = sel_.p;
    }
    LAUNCH("gemm_lm_head", gemm_bf16_f32out(blas_, head_, static_cast<int>(head_rows_), H, sel, m, logits_.p, stream_));
    if (tail == Tail::kSample || tail == Tail::kSampleWork)
      LAUNCH("sample_rows", sample_rows(logits_.p, m, static_cast<int>(head_rows_), vmask_, sparams_.p, pen_ids_.p,
                                        pen_counts_.p, bias_ids_.p, bias_vals_.p, sample_work_, sout_.p, top_ids_.p,
                                        top_lps_.p, stream_));
    if (tail == Tail::kGreedy)
      LAUNCH("greedy_rows", greedy_rows(logits_.p, m, static_cast<int>(head_rows_), vmask_, ids_.p, lps_.p,
                                                    gscratch_.p, stream_));
    return Status();
  }

  void clear_graphs() {
    for (auto& [k, g] : graphs_) cudaGraphExecDestroy(g.exec);
    graphs_.clear();
  }

  Status finish_step() {
    CU_RETURN(cudaMemcpyAsync(flags_h_, flags_d_, sizeof(ErrorFlags), cudaMemcpyDeviceToHost, stream_));
    cudaError_t e = cudaStreamSynchronize(stream_);
    if (profiling()) prof_collect();
    if (e != cudaSuccess)
      return error(ErrorCode::kInternal, std::string("CUDA step failed: ") + cudaGetErrorString(e) +
                                             " (rerun with --debug-sync to name the kernel)");
    if (flags_h_->bad_token)
      return error(ErrorCode::kInvalidTokenId, std::to_string(flags_h_->bad_token) + " token id(s) outside the embedding");
    if (flags_h_->bad_kv_slot)
      return error(ErrorCode::kInternal, "KV block table entry out of range (" + std::to_string(flags_h_->bad_kv_slot) + ")");
    return Status();
  }

  model::ModelConfig cfg_;
  std::shared_ptr<const model::WeightSet> ws_;
  model::WeightSet empty_;
  CudaModelOptions opts_;
  bool no_flash_ = env_on("BALLAST_CUDA_NO_FLASH");
  bool no_decode_attn_ = env_on("BALLAST_CUDA_NO_DECODE_ATTN");
  bool no_fused_gemv_ = env_on("BALLAST_CUDA_NO_FUSED_GEMV");
  int64_t rows_ = 0, head_rows_ = 0;
  bool tied_ = true;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::vector<void*> allocs_;
  bf16 *emb_ = nullptr, *head_ = nullptr;
  float *final_norm_ = nullptr, *inv_freq_ = nullptr, *inv_freq_local_ = nullptr;  // (H), (hd/2), (hd/2)
  bool gemma_ = false;  // Gemma 3 sandwich norms
  std::vector<Layer> layers_;
  // Paged KV cache: per layer (blocks, n_kv, 16, hd) for K and V.
  int64_t block_elems_ = 0, n_blocks_ = 0;
  std::vector<bf16*> k_cache_, v_cache_;
  std::vector<int32_t> free_blocks_;
  std::unordered_map<int32_t, std::vector<int32_t>> seq_blocks_;
  // Step buffers.
  DevBuf<int32_t> idx_, ids_;
  DevBuf<float> x_, logits_, lps_, part_;
  DevBuf<unsigned char> gscratch_;
  DevBuf<int> counters_;  // attention_decode split tickets (rows, n_kv), kept zero
  // Device sampler: per-row params, penalty/bias lists, work rows, results.
  DevBuf<SampleRowParams> sparams_;
  DevBuf<SampleRowOut> sout_;
  DevBuf<int32_t> top_ids_, pen_ids_, pen_counts_, bias_ids_;
  DevBuf<float> top_lps_, bias_vals_, work_;
  float* sample_work_ = nullptr;
  std::vector<SampleRowParams> sp_;
  std::vector<SampleRowOut> sout_h_;
  std::vector<int32_t> pen_ids_h_, pen_counts_h_, bias_ids_h_, top_ids_h_;
  std::vector<float> bias_vals_h_, top_lps_h_;
  DevBuf<bf16> hn_, delta_, qkv_, att_, gu_, act_, sel_;
  DevBuf<uint8_t> valid_;
  const uint8_t* vmask_ = nullptr;  // this step's vocabulary mask (valid_.p or null)
  const void* valid_src_ = nullptr;
  size_t valid_version_ = 0;
  ErrorFlags* flags_d_ = nullptr;
  ErrorFlags* flags_h_ = nullptr;
  void* host_ = nullptr;
  size_t host_bytes_ = 0;
  // Step scratch (host), reused across steps.
  std::unordered_map<int32_t, int32_t> slot_of_;
  std::vector<int32_t> seqs_, need_, logit_idx_, row_ids_;
  std::vector<const std::vector<int32_t>*> blocks_of_;
  std::vector<PrefillTile> tiles_;
  // CUDA graphs of decode steps, keyed by (tail and mask present, tokens, block-table width).
  using GraphKey = std::tuple<int, int, int>;
  struct GraphEntry {
    cudaGraphExec_t exec;
    uint64_t epoch;
  };
  std::map<GraphKey, GraphEntry> graphs_;
  uint64_t buf_epoch_ = 0;
  bool use_graphs_ = [] {
    const char* e = std::getenv("BALLAST_CUDA_GRAPHS");
    return !(e && std::strcmp(e, "0") == 0);
  }();
};

}  // namespace

Result<std::unique_ptr<model::Model>> create_cuda_model(const model::ModelConfig& cfg,
                                                        std::shared_ptr<const model::WeightSet> ws,
                                                        const CudaModelOptions& opts) {
  const auto* emb = ws->find("model.embed_tokens.weight");
  if (!emb || emb->shape.size() != 2) return error(ErrorCode::kNotFound, "tensor 'model.embed_tokens.weight' missing");
  const auto* head = ws->find("lm_head.weight");
  const bool tied = head == nullptr || cfg.tie_embeddings;
  auto m = std::make_unique<CudaModel>(cfg, ws, opts);
  BALLAST_RETURN_IF_ERROR(m->init_common(emb->shape[0], tied ? emb->shape[0] : head->shape[0], tied));
  BALLAST_RETURN_IF_ERROR(m->init_from_weights());
  return std::unique_ptr<model::Model>(std::move(m));
}

Result<std::unique_ptr<model::Model>> create_random_cuda_model(const model::ModelConfig& cfg, int64_t rows,
                                                               uint64_t seed, const CudaModelOptions& opts) {
  auto m = std::make_unique<CudaModel>(cfg, nullptr, opts);
  BALLAST_RETURN_IF_ERROR(m->init_common(rows, rows, cfg.tie_embeddings));
  BALLAST_RETURN_IF_ERROR(m->init_random(seed));
  return std::unique_ptr<model::Model>(std::move(m));
}

}  // namespace ballast::cuda

#else  // no CUDA backend in this build

namespace ballast::cuda {
Status cuda_available() {
  return error(ErrorCode::kUnsupported, "--device cuda: this build has no CUDA backend (built without nvcc)");
}
Result<std::unique_ptr<model::Model>> create_cuda_model(const model::ModelConfig&, std::shared_ptr<const model::WeightSet>,
                                                        const CudaModelOptions&) {
  return cuda_available();
}
Result<std::unique_ptr<model::Model>> create_random_cuda_model(const model::ModelConfig&, int64_t, uint64_t,
                                                               const CudaModelOptions&) {
  return cuda_available();
}
}  // namespace ballast::cuda

#endif
