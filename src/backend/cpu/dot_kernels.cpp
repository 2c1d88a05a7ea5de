// AVX2 integer dot products: weights unpacked to unsigned bytes (offsets folded out
// through the activation block sums), multiplied with _mm256_maddubs_epi16 against
// signed int8 activations, then scaled per 32 values in float.
#include "backend/cpu/dot_kernels.h"

#include <cpuid.h>
#include <immintrin.h>

#include <atomic>
#include <type_traits>

#include <cmath>
#include <cstring>

#include "core/quant.h"
#include "backend/cpu/q8_block.h"
#include "backend/cpu/simd.h"

namespace ballast::cpu {

void quantize_q8a(const float* x, BlockQ8A* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    int32_t lo, hi;
    const float d = quantize_block32(x, y[b].qs, &lo, &hi);
    y[b].d = d;
    y[b].s = d * static_cast<float>(lo + hi);
  }
}

inline float fp16_to_fp32_inline(uint16_t h) { return _cvtsh_ss(h); }
#define fp16_to_fp32 fp16_to_fp32_inline

#define BALLAST_KNS avx2
#define BALLAST_VNNI 0
#include "backend/cpu/dot_kernels.inc"
#undef BALLAST_KNS
#undef BALLAST_VNNI

#pragma GCC push_options
#pragma GCC target("avxvnni")
#define BALLAST_KNS vnni
#define BALLAST_VNNI 1
#include "backend/cpu/dot_kernels.inc"
#undef BALLAST_KNS
#undef BALLAST_VNNI
#pragma GCC pop_options
#undef fp16_to_fp32

bool cpu_has_avx_vnni() {
  static const bool has = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return ((a >> 4) & 1u) != 0;  // CPUID.(7,1):EAX[4] = AVX-VNNI
  }();
  return has;
}

namespace {
std::atomic<bool> g_avx2_only{false};
}

void set_dot_kernels_avx2_only(bool avx2_only) { g_avx2_only.store(avx2_only); }

const DotKernelSet* dot_kernels(DType t) {
  if (cpu_has_avx_vnni() && !g_avx2_only.load(std::memory_order_relaxed)) return vnni::kernel_set(t);
  return avx2::kernel_set(t);
}

namespace {
inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
}  // namespace

float vec_dot_f16(const uint16_t* w, const float* x, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
    acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += fp16_to_fp32(w[i]) * x[i];
  return s;
}

float vec_dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i v = load32(w + i);
    // bf16 -> f32 is a 16-bit left shift: unpack with zeros into the high halves.
    __m256i lo = _mm256_unpacklo_epi16(_mm256_setzero_si256(), v);  // elements 0-3, 8-11
    __m256i hi = _mm256_unpackhi_epi16(_mm256_setzero_si256(), v);  // elements 4-7, 12-15
    __m256 xl = _mm256_permute2f128_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8), 0x20);
    __m256 xh = _mm256_permute2f128_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8), 0x31);
    // xl = x[0..3], x[8..11]; xh = x[4..7], x[12..15]: same lane order as lo / hi.
    acc0 = _mm256_fmadd_ps(_mm256_castsi256_ps(lo), xl, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_castsi256_ps(hi), xh, acc1);
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
  return s;
}

}  // namespace ballast::cpu
