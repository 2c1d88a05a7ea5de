// GGUF: GgufFile::open over the input (as a temp file), then every accessor.
#include <cstdint>

#include "fuzz_util.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = ballast::fuzz::temp_file(data, size, ".gguf");
  auto r = ballast::io::GgufFile::open(path);
  if (!r.ok()) return 0;
  auto& g = *r.value();
  for (auto& [k, v] : g.metadata()) {
    (void)g.get_string(k); (void)g.get_int(k); (void)g.get_float(k); (void)g.get_bool(k);
    (void)g.get_strings(k); (void)g.get_ints(k); (void)g.get_floats(k);
    (void)v.array_size();
  }
  volatile uint8_t sink = 0;
  for (auto& t : g.tensors()) {
    (void)g.tensor(t.name);
    (void)t.n_elements();
    // The data range was checked against the file: touching its ends must be in bounds.
    if (t.nbytes && t.data) sink = sink + t.data[0] + t.data[t.nbytes - 1];
  }
  (void)g.architecture();
  return 0;
}
