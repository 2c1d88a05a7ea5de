// Hidden subcommand `ballast quant-dequant TYPE IN OUT`: dequantizes a raw block file
// with our kernels so tests can compare against gguf-py's reference.
#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "core/quant.h"
#include "core/dtype.h"

namespace ballast::cpu {

namespace {
bool parse_dtype(const std::string& name, DType* out) {
  static const DType kAll[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                               DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                               DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  for (DType t : kAll) {
    std::string n = dtype_name(t);
    if (n.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < n.size(); ++i) eq &= std::toupper(static_cast<unsigned char>(name[i])) == n[i];
    if (eq) { *out = t; return true; }
  }
  return false;
}
}  // namespace

// argv: [prog] TYPE IN OUT. Returns 0 on success, 2 on usage/IO errors.
int cpu_quant_selftest_main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: quant-dequant TYPE IN OUT  (TYPE: F32 F16 BF16 Q4_0 ... Q6_K)\n");
    return 2;
  }
  DType t;
  if (!parse_dtype(argv[1], &t)) {
    std::fprintf(stderr, "quant-dequant: unknown type '%s'\n", argv[1]);
    return 2;
  }
  std::FILE* f = std::fopen(argv[2], "rb");
  if (!f) { std::fprintf(stderr, "quant-dequant: cannot open '%s'\n", argv[2]); return 2; }
  std::vector<unsigned char> in;
  unsigned char buf[65536];
  for (size_t k; (k = std::fread(buf, 1, sizeof buf, f)) > 0;) in.insert(in.end(), buf, buf + k);
  std::fclose(f);
  const auto& info = dtype_info(t);
  if (in.size() % info.block_bytes) {
    std::fprintf(stderr, "quant-dequant: %zu bytes is not a whole number of %s blocks (%u bytes)\n",
                 in.size(), info.name, info.block_bytes);
    return 2;
  }
  const int64_t n = static_cast<int64_t>(in.size() / info.block_bytes) * info.block_elems;
  std::vector<float> outv(n);
  dequantize_row(t, in.data(), outv.data(), n);
  std::FILE* o = std::fopen(argv[3], "wb");
  if (!o || std::fwrite(outv.data(), sizeof(float), n, o) != static_cast<size_t>(n)) {
    std::fprintf(stderr, "quant-dequant: cannot write '%s'\n", argv[3]);
    if (o) std::fclose(o);
    return 2;
  }
  std::fclose(o);
  return 0;
}

}  // namespace ballast::cpu
