// safetensors: SafetensorsSet::open_file over the input (header JSON, dtypes, offsets).
#include <cstdint>

#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = ballast::fuzz::temp_file(data, size, ".safetensors");
  auto r = ballast::io::SafetensorsSet::open_file(path);
  if (!r.ok()) return 0;
  volatile uint8_t sink = 0;
  for (auto& [name, t] : r.value()->tensors()) {
    (void)r.value()->find(name);
    if (t.nbytes && t.data) sink = sink + t.data[0] + t.data[t.nbytes - 1];
  }
  return 0;
}
