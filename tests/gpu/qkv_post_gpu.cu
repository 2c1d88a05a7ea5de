// GPU tests of qkv_post.cu against host references that follow the CPU model's math
// (llama.cpp / gemma3.cpp: bias -> per-head rmsnorm -> rope; cpu::rmsnorm, cpu::rope with
// double angles). Linked into ballast_gpu_tests; main (model_gpu.cu) calls
// run_qkv_post_gpu_tests().
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/kernels.h"
#include "backend/cuda/qkv_post.h"
#include "gpu_check.h"

using namespace ballast;
#define QCHECK GPU_CHECK

namespace {


float bf(float x) { return __bfloat162float(__float2bfloat16(x)); }
uint16_t bits(cuda::bf16 v) {
  uint16_t b;
  std::memcpy(&b, &v, 2);
  return b;
}

// One bf16 output against its fp32 reference: about 1 bf16 ulp, plus an absolute floor for
// values that nearly cancel (rope) where fp32 ordering differences dominate.
bool close_bf16(float got, float ref) { return std::fabs(got - ref) <= 0.008f * std::fabs(ref) + 1e-4f; }

template <class T>
T* to_dev(const std::vector<T>& v) {
  T* d = nullptr;
  cudaMalloc(&d, std::max<size_t>(v.size(), 1) * sizeof(T));
  if (!v.empty()) cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}
template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> v(n);
  cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
  return v;
}

constexpr uint16_t kPoison = 0x5A5A;  // cache fill: any write shows

struct QkvCase {
  int hd, n_heads, n_kv;
  bool bias, norm, interleaved;
  float offset;
};

// Host reference of one token row (W = (n_heads + 2 n_kv) hd floats, in place).
void ref_row(float* x, const QkvCase& c, const std::vector<float>& bias, const std::vector<float>& qn,
             const std::vector<float>& kn, float eps, int32_t pos, const std::vector<float>& inv_freq) {
  const int hd = c.hd, half = hd / 2, heads = c.n_heads + 2 * c.n_kv;
  std::vector<float> cs(half), sn(half);
  for (int i = 0; i < half; ++i) {  // layers.cpp apply_rope
    const double a = static_cast<double>(pos) * inv_freq[i];
    cs[i] = static_cast<float>(std::cos(a));
    sn[i] = static_cast<float>(std::sin(a));
  }
  for (int h = 0; h < heads; ++h) {
    float* v = x + h * hd;
    const int kind = h < c.n_heads ? 0 : (h < c.n_heads + c.n_kv ? 1 : 2);
    if (c.bias)
      for (int e = 0; e < hd; ++e) v[e] += bias[h * hd + e];
    if (c.norm && kind < 2) {  // cpu::rmsnorm with w = offset + w
      const std::vector<float>& w = kind == 0 ? qn : kn;
      double ss = 0;
      for (int e = 0; e < hd; ++e) ss += static_cast<double>(v[e]) * v[e];
      const float inv = 1.f / std::sqrt(static_cast<float>(ss) / static_cast<float>(hd) + eps);
      for (int e = 0; e < hd; ++e) v[e] = v[e] * inv * (c.offset + w[e]);
    }
    if (kind < 2)  // cpu::rope
      for (int i = 0; i < half; ++i) {
        const int i0 = c.interleaved ? 2 * i : i, i1 = c.interleaved ? 2 * i + 1 : i + half;
        const float a = v[i0], b = v[i1];
        v[i0] = a * cs[i] - b * sn[i];
        v[i1] = a * sn[i] + b * cs[i];
      }
  }
}

// Runs qkv_post on n tokens (positions pos, cache slots slot; some may be bad) and checks
// qkv rows, every cache element (written slots vs reference, the rest untouched) and flags.
void run_qkv_case(const QkvCase& c, const std::vector<int32_t>& pos, const std::vector<int32_t>& slot,
                  int blocks, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f), ub(-0.5f, 0.5f);
  const int n = static_cast<int>(pos.size());
  const int hd = c.hd, qd = c.n_heads * hd, kd = c.n_kv * hd, W = qd + 2 * kd;
  const int64_t n_slots = static_cast<int64_t>(blocks) * 16;
  const float eps = 1e-6f;
  const double theta = hd == 256 ? 1e6 : 1e4;

  std::vector<float> xin(static_cast<size_t>(n) * W);  // bf16-exact input values
  for (auto& v : xin) v = bf(u(rng));
  std::vector<float> bias(W), qn(hd), kn(hd), inv(hd / 2);
  for (auto& v : bias) v = ub(rng);
  // offset 1: w near 0 (Gemma HF form); offset 0: w near 1.
  for (auto& v : qn) v = ub(rng) + (c.offset == 0.f ? 1.f : 0.f);
  for (auto& v : kn) v = ub(rng) + (c.offset == 0.f ? 1.f : 0.f);
  for (int i = 0; i < hd / 2; ++i) inv[i] = static_cast<float>(std::pow(theta, -2.0 * i / hd));

  std::vector<float> ref = xin;
  for (int t = 0; t < n; ++t) ref_row(&ref[static_cast<size_t>(t) * W], c, bias, qn, kn, eps, pos[t], inv);

  std::vector<cuda::bf16> qkv_h(xin.size());
  for (size_t i = 0; i < xin.size(); ++i) qkv_h[i] = __float2bfloat16(xin[i]);
  const size_t cache_n = static_cast<size_t>(n_slots) * kd;  // (blocks, n_kv, 16, hd)
  const size_t guard = static_cast<size_t>(16) * kd;          // one poisoned block before and after the pool
  cuda::bf16* d_qkv = to_dev(qkv_h);
  float* d_bias = to_dev(bias);
  float* d_qn = to_dev(qn);
  float* d_kn = to_dev(kn);
  float* d_inv = to_dev(inv);
  int32_t* d_pos = to_dev(pos);
  int32_t* d_slot = to_dev(slot);
  cuda::bf16 *d_kc_all = nullptr, *d_vc_all = nullptr;  // guard | pool | guard
  cudaMalloc(&d_kc_all, (cache_n + 2 * guard) * 2);
  cudaMalloc(&d_vc_all, (cache_n + 2 * guard) * 2);
  cudaMemset(d_kc_all, 0x5A, (cache_n + 2 * guard) * 2);
  cudaMemset(d_vc_all, 0x5A, (cache_n + 2 * guard) * 2);
  cuda::bf16 *d_kc = d_kc_all + guard, *d_vc = d_vc_all + guard;
  cuda::ErrorFlags* d_flags = nullptr;
  cudaMalloc(&d_flags, sizeof(cuda::ErrorFlags));
  cudaMemset(d_flags, 0, sizeof(cuda::ErrorFlags));

  cuda::QkvPostArgs a{};
  a.qkv = d_qkv;
  a.n = n;
  a.n_heads = c.n_heads;
  a.n_kv = c.n_kv;
  a.hd = hd;
  a.bias = c.bias ? d_bias : nullptr;
  a.q_norm = c.norm ? d_qn : nullptr;
  a.k_norm = c.norm ? d_kn : nullptr;
  a.eps = eps;
  a.norm_offset = c.offset;
  a.pos = d_pos;
  a.inv_freq = d_inv;
  a.interleaved = c.interleaved;
  a.slot = d_slot;
  a.n_slots = n_slots;
  a.k_cache = d_kc;
  a.v_cache = d_vc;
  a.flags = d_flags;
  cuda::qkv_post(a, 0);
  const cudaError_t err = cudaDeviceSynchronize();
  const cudaError_t lerr = cudaGetLastError();
  char what[160];
  std::snprintf(what, sizeof what, "qkv_post hd=%d heads=%d/%d bias=%d norm=%d inter=%d off=%g", hd, c.n_heads,
                c.n_kv, c.bias, c.norm, c.interleaved, c.offset);
  QCHECK(err == cudaSuccess && lerr == cudaSuccess, "%s: cuda error %s", what,
         cudaGetErrorString(err != cudaSuccess ? err : lerr));

  const auto qkv_o = to_host(d_qkv, qkv_h.size());
  const auto kc_all = to_host(d_kc_all, cache_n + 2 * guard), vc_all = to_host(d_vc_all, cache_n + 2 * guard);
  const std::vector<cuda::bf16> kc(kc_all.begin() + guard, kc_all.end() - guard),
      vc(vc_all.begin() + guard, vc_all.end() - guard);
  cuda::ErrorFlags fl{};
  cudaMemcpy(&fl, d_flags, sizeof fl, cudaMemcpyDeviceToHost);

  // qkv rows: q rotated; k (rotated) and v (biased) written back as well.
  int bad_q = 0;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const float g = __bfloat162float(qkv_o[i]);
    if (!close_bf16(g, ref[i])) {
      if (bad_q++ < 3)
        std::printf("  %s: qkv[t=%zu, col=%zu] = %g, ref %g\n", what, i / W, i % W, g, ref[i]);
    }
    worst = std::max(worst, static_cast<double>(std::fabs(g - ref[i])));
  }
  QCHECK(bad_q == 0, "%s: %d qkv elements off (worst abs %g)", what, bad_q, worst);

  // Cache: expected value per element, or poison where no valid slot wrote.
  std::vector<float> ek(cache_n, NAN), ev(cache_n, NAN);
  int n_bad = 0;
  for (int t = 0; t < n; ++t) {
    if (slot[t] < 0 || slot[t] >= n_slots) {
      ++n_bad;
      continue;
    }
    const int64_t blk = slot[t] / 16, off = slot[t] % 16;
    for (int g = 0; g < c.n_kv; ++g)
      for (int d = 0; d < hd; ++d) {
        const size_t ci = static_cast<size_t>(((blk * c.n_kv + g) * 16 + off) * hd + d);
        ek[ci] = ref[static_cast<size_t>(t) * W + qd + g * hd + d];
        ev[ci] = ref[static_cast<size_t>(t) * W + qd + kd + g * hd + d];
      }
  }
  int bad_k = 0, bad_v = 0, touched = 0;
  for (size_t i = 0; i < cache_n; ++i) {
    if (std::isnan(ek[i])) {
      touched += (bits(kc[i]) != kPoison) + (bits(vc[i]) != kPoison);
      continue;
    }
    if (!close_bf16(__bfloat162float(kc[i]), ek[i])) bad_k++;
    if (!close_bf16(__bfloat162float(vc[i]), ev[i])) bad_v++;
  }
  QCHECK(bad_k == 0 && bad_v == 0, "%s: cache mismatches k %d v %d", what, bad_k, bad_v);
  for (size_t i = 0; i < guard; ++i)  // outside the pool (a bad slot must not write there)
    for (size_t j : {i, cache_n + guard + i}) touched += (bits(kc_all[j]) != kPoison) + (bits(vc_all[j]) != kPoison);
  QCHECK(touched == 0, "%s: %d cache elements outside the tokens' slots were written", what, touched);
  QCHECK(fl.bad_kv_slot == n_bad && fl.bad_token == 0, "%s: flags bad_kv_slot %d (want %d), bad_token %d", what,
         fl.bad_kv_slot, n_bad, fl.bad_token);

  for (void* p : {static_cast<void*>(d_qkv), static_cast<void*>(d_bias), static_cast<void*>(d_qn),
                  static_cast<void*>(d_kn), static_cast<void*>(d_inv), static_cast<void*>(d_pos),
                  static_cast<void*>(d_slot), static_cast<void*>(d_kc_all), static_cast<void*>(d_vc_all),
                  static_cast<void*>(d_flags)})
    cudaFree(p);
}

void test_qkv_post() {
  // 6 tokens at mixed positions (incl. large ones) into distinct slots of a 4-block pool.
  const std::vector<int32_t> pos = {0, 1, 37, 4095, 100000, 524287};
  const std::vector<int32_t> slot = {5, 16, 63, 0, 33, 47};
  uint32_t seed = 1;
  for (int hd : {8, 64, 128, 256})
    for (int bias = 0; bias < 2; ++bias)
      for (int norm = 0; norm < 2; ++norm)
        for (int inter = 0; inter < 2; ++inter)
          for (float off : {0.f, 1.f}) {
            if (!norm && off != 0.f) continue;  // the offset only matters with the norm
            run_qkv_case({hd, 8, 2, bias != 0, norm != 0, inter != 0, off}, pos, slot, 4, seed++);
          }
  // More heads than warps per block, MHA, and a one-token decode.
  run_qkv_case({128, 16, 16, true, true, false, 0.f}, pos, slot, 4, 101);
  run_qkv_case({64, 3, 1, false, true, true, 1.f}, {77777}, {50}, 4, 102);
  // Bad slots (one past the pool, negative): flagged, nothing written to the cache, q still done.
  run_qkv_case({64, 8, 2, true, true, false, 1.f}, {3, 4, 5, 100000}, {3, 64, -1, 17}, 4, 103);
  run_qkv_case({256, 8, 2, false, true, false, 1.f}, {9, 10}, {1 << 30, 2}, 4, 104);
}

}  // namespace

void run_qkv_post_gpu_tests() {
  std::printf("[qkv_post: bias, q/k norm, rope, paged kv write]\n");
  test_qkv_post();
}
