// Byte builders for the PyTorch checkpoint tests: pickle opcodes written by hand, a minimal
// stored zip (optionally zip64), the legacy torch.save stream. Tests craft exactly the bytes
// they mean, valid or not.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace ballast::test {

inline void put_le(std::string& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
}

struct Pickle {
  std::string b;
  Pickle& op(uint8_t c) { b += static_cast<char>(c); return *this; }
  Pickle& raw(const std::string& s) { b += s; return *this; }
  Pickle& proto(int v = 2) { op(0x80); return op(static_cast<uint8_t>(v)); }
  Pickle& global(const std::string& m, const std::string& n) { op('c'); b += m + "\n" + n + "\n"; return *this; }
  Pickle& str(const std::string& s) { op('X'); put_le(b, s.size(), 4); b += s; return *this; }
  Pickle& integer(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) { op('J'); put_le(b, static_cast<uint64_t>(v), 4); return *this; }
    op(0x8a); op(8); put_le(b, static_cast<uint64_t>(v), 8); return *this;
  }
  Pickle& ints(const std::vector<int64_t>& v) { mark(); for (auto x : v) integer(x); return op('t'); }
  Pickle& mark() { return op('('); }
  Pickle& none() { return op('N'); }
  Pickle& ordered_dict() { global("collections", "OrderedDict"); op(')'); return op('R'); }
  Pickle& stop() { return op('.'); }
};

struct TensorSpec {
  std::string name;
  std::string type = "FloatStorage";
  std::string key = "0";
  int64_t storage_numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
};

// The entries of a state dict as torch.save pickles them (without PROTO/dict/STOP around them).
inline std::string tensor_items(const std::vector<TensorSpec>& ts, bool legacy_pid = false) {
  Pickle p;
  for (const auto& t : ts) {
    p.str(t.name).global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().str("storage").global("torch", t.type).str(t.key).str("cpu").integer(t.storage_numel);
    if (legacy_pid) p.none();
    p.op('t').op('Q');  // persistent id -> storage
    p.integer(t.offset).ints(t.shape).ints(t.stride).op(0x89).ordered_dict();
    p.op('t').op('R');
  }
  return p.b;
}

// A complete state-dict pickle: OrderedDict + SETITEMS of the tensors.
inline std::string state_dict_pickle(const std::vector<TensorSpec>& ts, bool legacy_pid = false) {
  Pickle p;
  p.proto(2).ordered_dict().mark().raw(tensor_items(ts, legacy_pid)).op('u').stop();
  return p.b;
}

// A zip archive of stored entries. zip64: sizes and offsets in zip64 extra fields and the
// zip64 end-of-central-directory record + locator, as writers do past 4 GiB.
inline std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& entries, bool zip64 = false,
                              uint16_t method = 0) {
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint64_t off = out.size();
    std::string local_extra, central_extra;
    if (zip64) {
      put_le(local_extra, 1, 2), put_le(local_extra, 16, 2), put_le(local_extra, data.size(), 8),
          put_le(local_extra, data.size(), 8);
      put_le(central_extra, 1, 2), put_le(central_extra, 24, 2), put_le(central_extra, data.size(), 8),
          put_le(central_extra, data.size(), 8), put_le(central_extra, off, 8);
    }
    const uint64_t sz32 = zip64 ? 0xFFFFFFFF : data.size();
    put_le(out, 0x04034b50, 4), put_le(out, 45, 2), put_le(out, 0, 2), put_le(out, method, 2);
    put_le(out, 0, 4), put_le(out, 0, 4), put_le(out, sz32, 4), put_le(out, sz32, 4);
    put_le(out, name.size(), 2), put_le(out, local_extra.size(), 2);
    out += name + local_extra + data;
    put_le(cd, 0x02014b50, 4), put_le(cd, 45, 2), put_le(cd, 45, 2), put_le(cd, 0, 2), put_le(cd, method, 2);
    put_le(cd, 0, 4), put_le(cd, 0, 4), put_le(cd, sz32, 4), put_le(cd, sz32, 4);
    put_le(cd, name.size(), 2), put_le(cd, central_extra.size(), 2), put_le(cd, 0, 2), put_le(cd, 0, 2);
    put_le(cd, 0, 2), put_le(cd, 0, 4), put_le(cd, zip64 ? 0xFFFFFFFF : off, 4);
    cd += name + central_extra;
  }
  const uint64_t cd_off = out.size();
  out += cd;
  if (zip64) {
    const uint64_t rec = out.size();
    put_le(out, 0x06064b50, 4), put_le(out, 44, 8), put_le(out, 45, 2), put_le(out, 45, 2), put_le(out, 0, 4);
    put_le(out, 0, 4), put_le(out, entries.size(), 8), put_le(out, entries.size(), 8);
    put_le(out, cd.size(), 8), put_le(out, cd_off, 8);
    put_le(out, 0x07064b50, 4), put_le(out, 0, 4), put_le(out, rec, 8), put_le(out, 1, 4);
  }
  put_le(out, 0x06054b50, 4), put_le(out, 0, 2), put_le(out, 0, 2);
  put_le(out, zip64 ? 0xFFFF : entries.size(), 2), put_le(out, zip64 ? 0xFFFF : entries.size(), 2);
  put_le(out, zip64 ? 0xFFFFFFFF : cd.size(), 4), put_le(out, zip64 ? 0xFFFFFFFF : cd_off, 4), put_le(out, 0, 2);
  return out;
}

// The legacy stream: magic, protocol 1001, sys_info, the state dict, the key list, then per
// storage an int64 element count and its bytes (`storages`: key, count, bytes).
struct LegacyStorage {
  std::string key;
  int64_t count;
  std::string bytes;
};
inline std::string legacy_stream(const std::string& state_dict, const std::vector<LegacyStorage>& storages,
                                 bool little_endian = true) {
  Pickle p;
  p.proto(2).op(0x8a).op(10).raw(std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10)).stop();
  p.proto(2).op('M').raw(std::string("\xe9\x03", 2)).stop();
  p.proto(2).op('}').mark().str("protocol_version").integer(1001).str("little_endian").op(little_endian ? 0x88 : 0x89);
  p.str("type_sizes").op('}').mark().str("short").integer(2).str("int").integer(4).str("long").integer(4).op('u');
  p.op('u').stop();
  p.raw(state_dict);
  p.proto(2).op(']').mark();
  for (const auto& s : storages) p.str(s.key);
  p.op('e').stop();
  for (const auto& s : storages) {
    put_le(p.b, static_cast<uint64_t>(s.count), 8);
    p.b += s.bytes;
  }
  return p.b;
}

inline std::string floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

inline std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

}  // namespace ballast::test
