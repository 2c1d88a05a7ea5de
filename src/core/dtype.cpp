// DType table.
#include "core/dtype.h"

namespace ballast {

std::optional<DType> dtype_from_ggml(uint32_t g) {
  switch (g) {
    case 0: case 1: case 2: case 3: case 6: case 7: case 8:
    case 10: case 11: case 12: case 13: case 14: case 30:
      return static_cast<DType>(g);
    default:
      return std::nullopt;
  }
}

const DTypeInfo& dtype_info(DType t) {
  static const DTypeInfo kF32{"F32", 1, 4}, kF16{"F16", 1, 2}, kBF16{"BF16", 1, 2},
      kQ4_0{"Q4_0", 32, 18}, kQ4_1{"Q4_1", 32, 20}, kQ5_0{"Q5_0", 32, 22},
      kQ5_1{"Q5_1", 32, 24}, kQ8_0{"Q8_0", 32, 34}, kQ2_K{"Q2_K", 256, 84},
      kQ3_K{"Q3_K", 256, 110}, kQ4_K{"Q4_K", 256, 144}, kQ5_K{"Q5_K", 256, 176},
      kQ6_K{"Q6_K", 256, 210};
  switch (t) {
    case DType::kF32: return kF32;
    case DType::kF16: return kF16;
    case DType::kBF16: return kBF16;
    case DType::kQ4_0: return kQ4_0;
    case DType::kQ4_1: return kQ4_1;
    case DType::kQ5_0: return kQ5_0;
    case DType::kQ5_1: return kQ5_1;
    case DType::kQ8_0: return kQ8_0;
    case DType::kQ2_K: return kQ2_K;
    case DType::kQ3_K: return kQ3_K;
    case DType::kQ4_K: return kQ4_K;
    case DType::kQ5_K: return kQ5_K;
    case DType::kQ6_K: return kQ6_K;
  }
  return kF32;
}

std::optional<uint64_t> row_bytes(DType t, uint64_t n) {
  const auto& i = dtype_info(t);
  if (n % i.block_elems) return std::nullopt;
  return n / i.block_elems * i.block_bytes;
}

}  // namespace ballast
