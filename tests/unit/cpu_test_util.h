// Helpers shared by the cpu_* tests: random but well-formed weight blocks.
#pragma once
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/quant.h"
#include "core/dtype.h"

namespace ballast::cpu::testing {

inline const DType kAllDTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                                   DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                                   DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

// Byte offsets of the f16 scale fields in one block of t.
inline std::vector<int> f16_field_offsets(DType t) {
  switch (t) {
    case DType::kQ4_0: case DType::kQ5_0: case DType::kQ8_0: return {0};
    case DType::kQ4_1: case DType::kQ5_1: case DType::kQ4_K: case DType::kQ5_K: return {0, 2};
    case DType::kQ2_K: return {80, 82};
    case DType::kQ3_K: return {108};
    case DType::kQ6_K: return {208};
    default: return {};
  }
}

// rows x cols weight of dtype t with random payload bits and finite random scales.
inline std::vector<uint8_t> random_weight(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  const auto& info = dtype_info(t);
  const size_t bytes = static_cast<size_t>(rows) * (cols / info.block_elems) * info.block_bytes;
  std::vector<uint8_t> data(bytes);
  if (t == DType::kF32) {
    for (size_t i = 0; i < bytes / 4; ++i) { float v = nd(rng); std::memcpy(&data[4 * i], &v, 4); }
    return data;
  }
  if (t == DType::kF16 || t == DType::kBF16) {
    for (size_t i = 0; i < bytes / 2; ++i) {
      uint16_t h = t == DType::kF16 ? fp32_to_fp16(nd(rng)) : fp32_to_bf16(nd(rng));
      std::memcpy(&data[2 * i], &h, 2);
    }
    return data;
  }
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  for (size_t b = 0; b < bytes / info.block_bytes; ++b) {
    for (int off : f16_field_offsets(t)) {
      uint16_t h = fp32_to_fp16(nd(rng) * 0.1f);
      std::memcpy(&data[b * info.block_bytes + off], &h, 2);
    }
  }
  return data;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

}  // namespace ballast::cpu::testing
