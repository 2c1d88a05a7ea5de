// The restricted unpickler alone, on raw bytes: a sequence of pickles, as the legacy
// format has; then every reachable object is described.
#include <cstdint>
#include <span>

#include "io/pickle_vm.h"

using namespace ballast::io::pickle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  Unpickler u("fuzz");
  size_t pos = 0;
  for (int i = 0; i < 8 && pos < size; ++i) {
    size_t before = pos;
    auto r = u.load(bytes, pos);
    if (!r.ok()) break;
    if (pos <= before || pos > size) __builtin_trap();  // must make progress, stay in bounds
    const Obj& o = u.at(r.value());
    (void)Unpickler::kind_name(o.kind);
    for (uint32_t it : o.items) (void)u.at(it).kind;
  }
  for (auto& [k, idx] : u.storages()) (void)u.at(idx).i;
  return 0;
}
