// Kernel tests (run from model_gpu.cu's main): flash-decoding attention against the
// row-kernel reference (every split count, GQA groups, sliding window, bad block-table
// entries), multi-chunk greedy on long rows; and `--bench`: per-kernel GPU time and
// bandwidth on Llama-3.2-1B decode shapes (100 launches captured in a CUDA graph).
#include "backend/cuda/cublas_api.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "backend/cuda/kernels.h"
#include "gpu_check.h"

using namespace ballast;
using namespace ballast::cuda;
#define KCHECK GPU_CHECK

namespace {

template <class T>
T* dev(const std::vector<T>& h) {
  T* p = nullptr;
  cudaMalloc(&p, std::max<size_t>(h.size(), 1) * sizeof(T));
  cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return p;
}
template <class T>
std::vector<T> host(const T* p, size_t n) {
  std::vector<T> h(n);
  cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

// Attention arguments over a paged cache; scale 1/sqrt(hd).
AttnArgs attn_args(const bf16* qkv, const bf16* k_cache, const bf16* v_cache, const int32_t* pos, const int32_t* seq_slot,
                   const int32_t* block_table, int max_blocks, int64_t n_blocks, int n, int n_heads, int n_kv, int hd,
                   int window, int max_ctx, bf16* out, ErrorFlags* flags) {
  AttnArgs a{};
  a.qkv = qkv;
  a.k_cache = k_cache;
  a.v_cache = v_cache;
  a.pos = pos;
  a.seq_slot = seq_slot;
  a.block_table = block_table;
  a.max_blocks = max_blocks;
  a.n_blocks = n_blocks;
  a.n = n;
  a.n_heads = n_heads;
  a.n_kv = n_kv;
  a.hd = hd;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.window = window;
  a.max_ctx = max_ctx;
  a.out = out;
  a.flags = flags;
  return a;
}

// Builds a paged cache with rows of random positions; compares attention_decode (every
// split count) with attention_rows.
void test_attention_decode(int hd, int n_heads, int n_kv, int window, bool bad_entry) {
  std::mt19937 rng(hd * 131 + n_heads * 7 + n_kv + window);
  std::uniform_real_distribution<float> u(-1, 1);
  const int n = 5, qd = n_heads * hd, kd = n_kv * hd;
  const std::vector<int32_t> pos = {0, 17, 63, 300, 1000};
  const int max_ctx = 1001, max_blocks = (max_ctx + 15) / 16;
  const int64_t n_blocks = n * max_blocks + 3;
  std::vector<int32_t> perm(n_blocks);
  for (int i = 0; i < n_blocks; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> bt(n * max_blocks, -1), seq_slot(n);
  for (int t = 0; t < n; ++t) {
    seq_slot[t] = t;
    for (int b = 0; b <= pos[t] / 16; ++b) bt[t * max_blocks + b] = perm[t * max_blocks + b];
  }
  if (bad_entry) bt[4 * max_blocks + 3] = static_cast<int32_t>(n_blocks + 5);  // row 4 reads block 3
  std::vector<bf16> qkv(static_cast<size_t>(n) * (qd + 2 * kd)), kc(n_blocks * n_kv * 16 * hd), vc(kc.size());
  for (auto& x : qkv) x = __float2bfloat16(u(rng));
  for (auto& x : kc) x = __float2bfloat16(u(rng) * 2);
  for (auto& x : vc) x = __float2bfloat16(u(rng));
  bf16 *d_qkv = dev(qkv), *d_k = dev(kc), *d_v = dev(vc);
  int32_t *d_pos = dev(pos), *d_bt = dev(bt), *d_seq = dev(seq_slot);
  ErrorFlags* d_flags;
  cudaMalloc(&d_flags, sizeof(ErrorFlags));
  bf16 *d_ref, *d_out;
  cudaMalloc(&d_ref, n * qd * 2);
  cudaMalloc(&d_out, n * qd * 2);
  float* d_part;
  cudaMalloc(&d_part, static_cast<size_t>(n) * n_heads * 32 * (hd + 2) * 4);
  int* d_cnt;
  cudaMalloc(&d_cnt, n * n_kv * sizeof(int));
  cudaMemset(d_cnt, 0, n * n_kv * sizeof(int));
  AttnArgs a = attn_args(d_qkv, d_k, d_v, d_pos, d_seq, d_bt, max_blocks, n_blocks,
                         n, n_heads, n_kv, hd, window, max_ctx, d_ref, d_flags);
  cudaMemset(d_flags, 0, sizeof(ErrorFlags));
  attention_rows(a, 0);
  const auto ref = host(d_ref, n * qd);
  const int bad_ref = host(d_flags, 1)[0].bad_kv_slot;
  for (int splits : {1, 2, 3, 7, 32}) {
    cudaMemset(d_flags, 0, sizeof(ErrorFlags));
    cudaMemset(d_out, 0xff, n * qd * 2);
    a.out = d_out;
    float* po = d_part;
    float* pml = d_part + static_cast<size_t>(n) * n_heads * splits * hd;
    attention_decode(a, splits, po, pml, d_cnt, 0);
    const cudaError_t e = cudaDeviceSynchronize();
    KCHECK(e == cudaSuccess, "attention_decode: %s", cudaGetErrorString(e));
    const auto out = host(d_out, n * qd);
    const int bad = host(d_flags, 1)[0].bad_kv_slot;
    double num = 0, den = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      const double x = __bfloat162float(out[i]), r = __bfloat162float(ref[i]);
      num += (x - r) * (x - r);
      den += r * r;
      if (!std::isfinite(x)) num = INFINITY;
    }
    const double rel = std::sqrt(num / std::max(den, 1e-30));
    KCHECK(rel < 1e-2, "attention_decode hd %d heads %d/%d window %d splits %d: rel err %g", hd, n_heads, n_kv, window,
           splits, rel);
    KCHECK((bad > 0) == bad_entry && (bad_ref > 0) == bad_entry, "bad block entry flag: decode %d rows %d (expected %d)",
           bad, bad_ref, bad_entry);
  }
  for (void* p : {(void*)d_qkv, (void*)d_k, (void*)d_v, (void*)d_pos, (void*)d_bt, (void*)d_seq, (void*)d_flags,
                  (void*)d_ref, (void*)d_out, (void*)d_part, (void*)d_cnt})
    cudaFree(p);
}

// Tensor-core prefill tiles against the row kernel: one 100-token sequence continuing
// from position 30 (previous keys in the cache), with and without a sliding window.
void test_attention_prefill(int hd, int n_heads, int n_kv, int window) {
  std::mt19937 rng(hd + window);
  std::uniform_real_distribution<float> u(-1, 1);
  const int n = 100, pos0 = 30, qd = n_heads * hd, kd = n_kv * hd;
  const int max_ctx = pos0 + n, max_blocks = (max_ctx + 15) / 16, n_blocks = max_blocks + 2;
  std::vector<int32_t> pos(n), seq(n, 0), bt(max_blocks);
  for (int i = 0; i < n; ++i) pos[i] = pos0 + i;
  for (int b = 0; b < max_blocks; ++b) bt[b] = max_blocks - 1 - b + 2;  // scattered blocks
  std::vector<bf16> qkv(static_cast<size_t>(n) * (qd + 2 * kd)), kc(static_cast<size_t>(n_blocks) * n_kv * 16 * hd),
      vc(kc.size());
  for (auto& x : qkv) x = __float2bfloat16(u(rng));
  for (auto& x : kc) x = __float2bfloat16(u(rng) * 2);
  for (auto& x : vc) x = __float2bfloat16(u(rng));
  bf16 *d_qkv = dev(qkv), *d_k = dev(kc), *d_v = dev(vc), *d_ref, *d_out;
  int32_t *d_pos = dev(pos), *d_bt = dev(bt), *d_seq = dev(seq);
  std::vector<PrefillTile> tiles;
  for (int t = 0; t < n; t += 64) tiles.push_back({t, std::min(64, n - t), 0, pos0 + t});
  PrefillTile* d_tiles = dev(tiles);
  ErrorFlags* d_flags;
  cudaMalloc(&d_flags, sizeof(ErrorFlags));
  cudaMemset(d_flags, 0, sizeof(ErrorFlags));
  cudaMalloc(&d_ref, n * qd * 2);
  cudaMalloc(&d_out, n * qd * 2);
  AttnArgs a = attn_args(d_qkv, d_k, d_v, d_pos, d_seq, d_bt, max_blocks, n_blocks,
                         n, n_heads, n_kv, hd, window, max_ctx, d_ref, d_flags);
  attention_rows(a, 0);
  a.out = d_out;
  attention_prefill(a, d_tiles, static_cast<int>(tiles.size()), 0);
  const cudaError_t e = cudaDeviceSynchronize();
  KCHECK(e == cudaSuccess, "attention_prefill: %s", cudaGetErrorString(e));
  const auto ref = host(d_ref, n * qd), out = host(d_out, n * qd);
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double x = __bfloat162float(out[i]), r = __bfloat162float(ref[i]);
    num += (x - r) * (x - r);
    den += r * r;
    if (!std::isfinite(x)) num = INFINITY;
  }
  const double rel = std::sqrt(num / std::max(den, 1e-30));
  // P is rounded to bf16 for the tensor cores: a little looser than the row kernel.
  KCHECK(rel < 2e-2, "attention_prefill hd %d heads %d/%d window %d: rel err %g", hd, n_heads, n_kv, window, rel);
  KCHECK(host(d_flags, 1)[0].bad_kv_slot == 0, "attention_prefill: unexpected bad_kv_slot");
  for (void* p : {(void*)d_qkv, (void*)d_k, (void*)d_v, (void*)d_pos, (void*)d_bt, (void*)d_seq, (void*)d_tiles,
                  (void*)d_flags, (void*)d_ref, (void*)d_out})
    cudaFree(p);
}

void test_greedy_long() {
  const int V = 262208, m = 2;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-10, 10);
  std::vector<float> lg(static_cast<size_t>(m) * V);
  for (auto& x : lg) x = u(rng);
  lg[70000] = 20.0f;   // row 0: tie between 70000 and 30000 -> lower id
  lg[30000] = 20.0f;
  lg[V + 262207] = 30.0f;  // row 1: last id wins unless masked
  std::vector<uint8_t> valid(V, 1);
  valid[262207] = 0;
  lg[V + 5] = 25.0f;
  float* d = dev(lg);
  uint8_t* dv = dev(valid);
  int32_t* di;
  float* dl;
  void* scratch;
  cudaMalloc(&di, m * 4);
  cudaMalloc(&dl, m * 4);
  cudaMalloc(&scratch, greedy_scratch_bytes(m));
  greedy_rows(d, m, V, dv, di, dl, scratch, 0);
  const auto ids = host(di, m);
  const auto lps = host(dl, m);
  const int expect[2] = {30000, 5};
  for (int r = 0; r < m; ++r) {
    double mx = -1e30, sum = 0;
    for (int i = 0; i < V; ++i)
      if (valid[i]) mx = std::max<double>(mx, lg[static_cast<size_t>(r) * V + i]);
    for (int i = 0; i < V; ++i)
      if (valid[i]) sum += std::exp(lg[static_cast<size_t>(r) * V + i] - mx);
    KCHECK(ids[r] == expect[r], "greedy long row %d: id %d, expected %d", r, ids[r], expect[r]);
    KCHECK(std::fabs(lps[r] + std::log(sum)) < 1e-4, "greedy long row %d: logprob %g vs %g", r, lps[r], -std::log(sum));
  }
  for (void* p : {(void*)d, (void*)dv, (void*)di, (void*)dl, scratch}) cudaFree(p);
}

float bfr(float x) { return __bfloat162float(__float2bfloat16(x)); }

// gemv_small's fusions against a host reference that rounds where the unfused path does.
void test_gemv_fused() {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  const int N = 200, K = 520;
  std::vector<bf16> W(2 * N * K), X(8 * K);
  std::vector<float> Wf(2 * N * K), Xf(8 * K), xres(8 * K), nw(K);
  for (size_t i = 0; i < W.size(); ++i) Wf[i] = bfr(u(rng) * 0.1f), W[i] = __float2bfloat16(Wf[i]);
  for (size_t i = 0; i < X.size(); ++i) Xf[i] = bfr(u(rng)), X[i] = __float2bfloat16(Xf[i]);
  for (auto& v : xres) v = u(rng) * 3;
  for (auto& v : nw) v = 1 + u(rng) * 0.3f;
  bf16 *dW = dev(W), *dX = dev(X);
  float *dres = dev(xres), *dnw = dev(nw), *dY;
  cudaMalloc(&dY, 8 * 2 * N * 4);
  for (int n : {1, 2, 3, 5, 8}) {
    // normalized rows as the rmsnorm kernel produces them
    std::vector<float> xn(n * K);
    for (int t = 0; t < n; ++t) {
      double ss = 0;
      for (int k = 0; k < K; ++k) ss += double(xres[t * K + k]) * xres[t * K + k];
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / K) + 1e-5f);
      for (int k = 0; k < K; ++k) xn[t * K + k] = bfr(xres[t * K + k] * inv * (1.0f + nw[k]));
    }
    auto dot = [&](const float* w, const float* x) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += double(w[k]) * x[k];
      return static_cast<float>(s);
    };
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<float> ref(n * N);
      GemvArgs a{dW, N, K, nullptr, nullptr, nullptr, 1e-5f, 1.0f, n, dY};
      GemvEpi e = GemvEpi::kStoreF32;
      if (mode == 0) {  // plain X, f32 out
        a.X = dX;
        for (int t = 0; t < n; ++t)
          for (int r = 0; r < N; ++r) ref[t * N + r] = dot(&Wf[r * K], &Xf[t * K]);
      } else if (mode == 1) {  // norm prologue + SwiGLU pairs
        a.xf = dres;
        a.norm_w = dnw;
        e = GemvEpi::kSwiGlu;
        for (int t = 0; t < n; ++t)
          for (int r = 0; r < N; ++r) {
            const float g = bfr(dot(&Wf[r * K], &xn[t * K])), up = bfr(dot(&Wf[(N + r) * K], &xn[t * K]));
            ref[t * N + r] = bfr(g / (1 + std::exp(-g)) * up);
          }
      } else {  // residual add
        a.X = dX;
        e = GemvEpi::kAddF32;
        std::vector<float> y0(n * N);
        for (auto& v : y0) v = u(rng);
        cudaMemcpy(dY, y0.data(), y0.size() * 4, cudaMemcpyHostToDevice);
        for (int t = 0; t < n; ++t)
          for (int r = 0; r < N; ++r) ref[t * N + r] = y0[t * N + r] + bfr(dot(&Wf[r * K], &Xf[t * K]));
      }
      const bool ok = gemv_small(a, e, 0);
      std::vector<float> out(n * N);
      if (mode == 1) {
        const auto ob = host(reinterpret_cast<bf16*>(dY), n * N);
        for (int i = 0; i < n * N; ++i) out[i] = __bfloat162float(ob[i]);
      } else {
        out = host(dY, n * N);
      }
      double num = 0, den = 0;
      for (int i = 0; i < n * N; ++i) num += double(out[i] - ref[i]) * (out[i] - ref[i]), den += double(ref[i]) * ref[i];
      const double rel = std::sqrt(num / std::max(den, 1e-30));
      KCHECK(ok && rel < (mode == 0 ? 1e-4 : 1e-2), "gemv_small n=%d mode %d: rel err %g", n, mode, rel);
    }
  }
  for (void* p : {(void*)dW, (void*)dX, (void*)dres, (void*)dnw, (void*)dY}) cudaFree(p);
}

// GPU time of fn, launched 100 times inside one CUDA graph (no launch gaps).
double time_us(const std::function<void(cudaStream_t)>& fn) {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  fn(s);  // warm-up / lazy init outside the capture
  cudaStreamSynchronize(s);
  cudaGraph_t g;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  for (int i = 0; i < 100; ++i) fn(s);
  cudaStreamEndCapture(s, &g);
  cudaGraphExec_t ex;
  cudaGraphInstantiate(&ex, g, 0);
  cudaGraphLaunch(ex, s);
  cudaStreamSynchronize(s);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a, s);
  cudaGraphLaunch(ex, s);
  cudaEventRecord(b, s);
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaGraphExecDestroy(ex);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  return ms * 1000.0 / 100;
}
}  // namespace

void run_kernel_gpu_tests() {
  std::printf("[attention_decode vs attention_rows]\n");
  test_attention_decode(64, 32, 8, 0, false);
  test_attention_decode(64, 9, 3, 0, true);
  test_attention_decode(128, 32, 32, 0, false);
  test_attention_decode(128, 16, 2, 0, false);
  test_attention_decode(256, 4, 1, 512, false);
  test_attention_decode(256, 8, 4, 0, true);
  std::printf("[attention_prefill vs attention_rows]\n");
  test_attention_prefill(64, 32, 8, 0);
  test_attention_prefill(128, 8, 8, 0);
  test_attention_prefill(256, 4, 1, 0);
  test_attention_prefill(256, 4, 1, 32);
  test_attention_prefill(64, 8, 2, 17);
  std::printf("[gemv fusions]\n");
  test_gemv_fused();
  std::printf("[greedy on long rows]\n");
  test_greedy_long();
}

void run_kernel_bench() {
  std::printf("[kernel bench: llama-3.2-1b decode shapes, GPU time per launch]\n");
  cublasHandle_t h;
  ballast::cuda::blas_create(&h);
  const int H = 2048, F = 8192, V = 128256, qkvN = 3072;
  bf16 *W, *X, *Y;
  float* Yf;
  cudaMalloc(&W, static_cast<size_t>(V) * H * 2);
  cudaMalloc(&X, static_cast<size_t>(256) * 2 * F * 2);
  cudaMalloc(&Y, static_cast<size_t>(256) * 2 * F * 2);
  cudaMalloc(&Yf, static_cast<size_t>(8) * V * 4);
  fill_uniform_bf16(W, static_cast<int64_t>(V) * H, 0.03f, 1, 0);
  fill_uniform_bf16(X, static_cast<int64_t>(256) * 2 * F, 1.0f, 2, 0);
  float *xres, *wn;
  cudaMalloc(&xres, static_cast<size_t>(8) * F * 4);
  cudaMalloc(&wn, static_cast<size_t>(F) * 4);
  fill_const_f32(xres, 8 * F, 0.5f, 0);
  fill_const_f32(wn, F, 1.0f, 0);
  cudaDeviceSynchronize();
  struct Shape {
    const char* name;
    int N, K;
  };
  for (int n : {1, 4}) {
    for (Shape sh : {Shape{"qkv", qkvN, H}, Shape{"o", H, H}, Shape{"gate_up", 2 * F, H}, Shape{"down", H, F}}) {
      const double us = time_us([&](cudaStream_t s) { gemm_bf16(h, W, sh.N, sh.K, X, n, Y, s); });
      std::printf("  gemv %-8s n=%d %6d x %5d: %8.2f us  %7.0f GB/s\n", sh.name, n, sh.N, sh.K, us,
                  2.0 * sh.N * sh.K / us / 1e3);
    }
    {
      GemvArgs ga{W, F, H, nullptr, xres, wn, 1e-5f, 0.0f, n, Y};
      const double us = time_us([&](cudaStream_t s) { gemv_small(ga, GemvEpi::kSwiGlu, s); });
      std::printf("  gemv norm+gate_up+glu n=%d: %8.2f us  %7.0f GB/s\n", n, us, 4.0 * F * H / us / 1e3);
      GemvArgs gq{W, 3072, H, nullptr, xres, wn, 1e-5f, 0.0f, n, Y};
      const double uq = time_us([&](cudaStream_t s) { gemv_small(gq, GemvEpi::kStoreBf16, s); });
      std::printf("  gemv norm+qkv n=%d: %8.2f us  %7.0f GB/s\n", n, uq, 2.0 * 3072 * H / uq / 1e3);
      GemvArgs gd{W, H, F, X, nullptr, nullptr, 0.0f, 0.0f, n, xres};
      const double ud = time_us([&](cudaStream_t s) { gemv_small(gd, GemvEpi::kAddF32, s); });
      std::printf("  gemv down+residual n=%d: %8.2f us  %7.0f GB/s\n", n, ud, 2.0 * H * F / ud / 1e3);
    }
    const double ul = time_us([&](cudaStream_t s) { gemm_bf16_f32out(h, W, V, H, X, n, Yf, s); });
    std::printf("  lm_head n=%d: %8.2f us  %7.0f GB/s\n", n, ul, 2.0 * V * H / ul / 1e3);
  }
  {
    float* x;
    float* w;
    cudaMalloc(&x, 256 * H * 4);
    cudaMalloc(&w, H * 4);
    fill_const_f32(x, 256 * H, 0.5f, 0);
    fill_const_f32(w, H, 1.0f, 0);
    for (int n : {1, 256}) {
      const double us = time_us([&](cudaStream_t s) { add_rmsnorm(x, Y, w, n, H, 1e-5f, 0.0f, X, s); });
      std::printf("  add_rmsnorm n=%d: %8.2f us\n", n, us);
    }
    int32_t* ids;
    float* lps;
    void* scratch;
    cudaMalloc(&ids, 8 * 4);
    cudaMalloc(&lps, 8 * 4);
    cudaMalloc(&scratch, greedy_scratch_bytes(8));
    fill_const_f32(Yf, V, 0.25f, 0);
    const double ug = time_us([&](cudaStream_t s) { greedy_rows(Yf, 1, V, nullptr, ids, lps, scratch, s); });
    std::printf("  greedy_rows m=1 V=%d: %8.2f us\n", V, ug);
    cudaFree(x);
    cudaFree(w);
    cudaFree(ids);
    cudaFree(lps);
    cudaFree(scratch);
  }
  // Decode attention: n rows, context ctx each, llama-3.2-1b heads (32 q / 8 kv, hd 64).
  for (auto shape : {std::pair{1, 384}, std::pair{1, 4096}, std::pair{256, 256}}) {
    const int n = shape.first, ctx = shape.second;
    const int hd = 64, nh = 32, nkv = 8, qd = nh * hd, kd = nkv * hd, mb = (ctx + 15) / 16;
    const int64_t nb = static_cast<int64_t>(n) * mb;
    bf16 *qkv, *kc, *vc, *out;
    cudaMalloc(&qkv, static_cast<size_t>(n) * (qd + 2 * kd) * 2);
    cudaMalloc(&kc, nb * nkv * 16 * hd * 2);
    cudaMalloc(&vc, nb * nkv * 16 * hd * 2);
    cudaMalloc(&out, static_cast<size_t>(n) * qd * 2);
    fill_uniform_bf16(qkv, static_cast<int64_t>(n) * (qd + 2 * kd), 1.0f, 3, 0);
    fill_uniform_bf16(kc, nb * nkv * 16 * hd, 1.0f, 4, 0);
    fill_uniform_bf16(vc, nb * nkv * 16 * hd, 1.0f, 5, 0);
    std::vector<int32_t> pos(n, ctx - 1), seq(n), bt(nb);
    for (int i = 0; i < n; ++i) seq[i] = i;
    for (int64_t i = 0; i < nb; ++i) bt[i] = static_cast<int32_t>(i);
    int32_t *dpos = dev(pos), *dseq = dev(seq), *dbt = dev(bt);
    ErrorFlags* fl;
    cudaMalloc(&fl, sizeof(ErrorFlags));
    cudaMemset(fl, 0, sizeof(ErrorFlags));
    float* part;
    const int splits = attention_decode_splits(n, nkv, ctx);
    cudaMalloc(&part, static_cast<size_t>(n) * nh * splits * (hd + 2) * 4);
    int* cnt;
    cudaMalloc(&cnt, n * nkv * sizeof(int));
    cudaMemset(cnt, 0, n * nkv * sizeof(int));
    AttnArgs a = attn_args(qkv, kc, vc, dpos, dseq, dbt, mb, nb, n, nh, nkv, hd, 0, ctx, out, fl);
    const double ur = time_us([&](cudaStream_t s) { attention_rows(a, s); });
    const double ud = time_us([&](cudaStream_t s) {
      attention_decode(a, splits, part, part + static_cast<size_t>(n) * nh * splits * hd, cnt, s);
    });
    const double kv_bytes = 2.0 * n * ctx * kd * 2;
    std::printf("  attention n=%d ctx=%d: rows %8.2f us, decode (%d splits) %8.2f us  %6.0f GB/s\n", n, ctx, ur, splits,
                ud, kv_bytes / ud / 1e3);
    for (void* p : {(void*)qkv, (void*)kc, (void*)vc, (void*)out, (void*)dpos, (void*)dseq, (void*)dbt, (void*)fl,
                    (void*)part, (void*)cnt})
      cudaFree(p);
  }
  // Prefill attention: one 2048-token sequence, llama-3.2-1b heads.
  {
    const int n = 2048, hd = 64, nh = 32, nkv = 8, qd = nh * hd, kd = nkv * hd, mb = n / 16;
    bf16 *qkv, *kc, *vc, *out;
    cudaMalloc(&qkv, static_cast<size_t>(n) * (qd + 2 * kd) * 2);
    cudaMalloc(&kc, static_cast<size_t>(mb) * nkv * 16 * hd * 2);
    cudaMalloc(&vc, static_cast<size_t>(mb) * nkv * 16 * hd * 2);
    cudaMalloc(&out, static_cast<size_t>(n) * qd * 2);
    fill_uniform_bf16(qkv, static_cast<int64_t>(n) * (qd + 2 * kd), 1.0f, 6, 0);
    fill_uniform_bf16(kc, static_cast<int64_t>(mb) * nkv * 16 * hd, 1.0f, 7, 0);
    fill_uniform_bf16(vc, static_cast<int64_t>(mb) * nkv * 16 * hd, 1.0f, 8, 0);
    std::vector<int32_t> pos(n), seq(n, 0), bt(mb);
    for (int i = 0; i < n; ++i) pos[i] = i;
    for (int b = 0; b < mb; ++b) bt[b] = b;
    std::vector<PrefillTile> tiles;
    for (int t = 0; t < n; t += 64) tiles.push_back({t, 64, 0, t});
    int32_t *dpos = dev(pos), *dseq = dev(seq), *dbt = dev(bt);
    PrefillTile* dt = dev(tiles);
    ErrorFlags* fl;
    cudaMalloc(&fl, sizeof(ErrorFlags));
    cudaMemset(fl, 0, sizeof(ErrorFlags));
    AttnArgs a = attn_args(qkv, kc, vc, dpos, dseq, dbt, mb, mb, n, nh, nkv, hd, 0, n, out, fl);
    const double us = time_us([&](cudaStream_t s) { attention_prefill(a, dt, static_cast<int>(tiles.size()), s); });
    const double flop = 4.0 * nh * hd * (static_cast<double>(n) * n / 2);
    std::printf("  attention_prefill n=%d (causal, 32/8 heads, hd 64): %8.2f us  %6.1f TFLOP/s\n", n, us, flop / us / 1e6);
    for (void* p : {(void*)qkv, (void*)kc, (void*)vc, (void*)out, (void*)dpos, (void*)dseq, (void*)dbt, (void*)dt,
                    (void*)fl})
      cudaFree(p);
  }
  for (int n : {2048}) {
    const int Nq = 3072;
    bf16 *Xp, *Yp;
    cudaMalloc(&Xp, static_cast<size_t>(n) * F * 2);
    cudaMalloc(&Yp, static_cast<size_t>(n) * 2 * F * 2);
    fill_uniform_bf16(Xp, static_cast<int64_t>(n) * F, 1.0f, 9, 0);
    struct G {
      const char* name;
      int N, K;
    };
    for (G g : {G{"qkv", Nq, H}, G{"o", H, H}, G{"gate_up", 2 * F, H}, G{"down", H, F}}) {
      const double us = time_us([&](cudaStream_t s) { gemm_bf16(h, W, g.N, g.K, Xp, n, Yp, s); });
      std::printf("  cuBLAS %-8s n=%d %6d x %5d: %8.2f us  %6.1f TFLOP/s\n", g.name, n, g.N, g.K, us,
                  2.0 * n * g.N * g.K / us / 1e6);
    }
    cudaFree(Xp);
    cudaFree(Yp);
  }
  cudaFree(W);
  cudaFree(X);
  cudaFree(Y);
  cudaFree(Yf);
  ballast::cuda::blas_destroy(h);
}
