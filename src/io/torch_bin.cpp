// torch.save formats. Zip (torch >= 1.6): <archive>/data.pkl is the state dict, whose
// persistent ids name storages stored uncompressed as <archive>/data/<key>; <archive>/byteorder
// says "little" (absent in older files: little). Legacy (_use_new_zipfile_serialization=False):
// pickles of the magic number, protocol version 1001, sys_info and the state dict, a pickled
// list of storage keys, then per key an int64 element count and the raw elements.
#include "io/torch_bin.h"

#include <cstring>
#include <filesystem>
#include <limits>
#include <span>

#include "io/pickle_vm.h"
#include "io/shard_index.h"
#include "io/zip_reader.h"

namespace ballast::io {

namespace fs = std::filesystem;
using pickle::Kind;
using pickle::Obj;
using pickle::Unpickler;

namespace {

// Storage key -> the bytes of the whole (root) storage.
using StorageBytes = std::map<std::string, std::span<const uint8_t>>;
using Keep = std::vector<std::shared_ptr<const void>>;

// 0x1950a86a20f9469cfc6c as the little-endian bytes of its pickled LONG1.
constexpr uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocol = 1001;

Status bad(const std::string& path, const std::string& msg) {
  return error(ErrorCode::kFormatError, path + ": " + msg);
}

// Kernels read elements at their natural alignment; a storage at an odd offset (the legacy
// stream packs them back to back) is copied once into an aligned buffer.
std::span<const uint8_t> aligned(std::span<const uint8_t> b, uint32_t elem_bytes, Keep& keep) {
  if (reinterpret_cast<uintptr_t>(b.data()) % elem_bytes == 0) return b;
  auto copy = std::make_shared<std::vector<uint8_t>>(b.begin(), b.end());  // operator new: max_align_t
  keep.push_back(copy);
  return {copy->data(), copy->size()};
}

// The dict entry `key` of a pickled dict, or null.
const Obj* dict_get(const Unpickler& up, const Obj& d, const std::string& key) {
  for (size_t i = 0; i + 1 < d.items.size(); i += 2)
    if (up.at(d.items[i]).kind == Kind::kStr && up.at(d.items[i]).s == key) return &up.at(d.items[i + 1]);
  return nullptr;
}

Result<uint32_t> read_zip(const std::shared_ptr<MappedFile>& mf, Unpickler& up, StorageBytes& out, Keep& keep) {
  const std::string& path = mf->path();
  BALLAST_ASSIGN_OR_RETURN(auto zip, ZipReader::open(mf));
  // The archive's top folder is named after the file torch.save wrote ("archive", "pytorch_model").
  std::string prefix;
  for (const auto& e : zip.entries()) {
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.substr(slash) == "/data.pkl") {
      prefix = e.name.substr(0, slash + 1);
      break;
    }
  }
  if (prefix.empty()) return bad(path, "zip archive without a <name>/data.pkl record: not a torch.save checkpoint");
  if (const ZipEntry* bo = zip.find(prefix + "byteorder")) {
    BALLAST_ASSIGN_OR_RETURN(auto b, zip.stored_data(*bo));
    const std::string order(reinterpret_cast<const char*>(b.data()), b.size());
    if (order != "little")
      return error(ErrorCode::kUnsupported,
                   path + ": byteorder record is '" + order + "'; only little-endian is supported");
  }
  BALLAST_ASSIGN_OR_RETURN(auto pkl, zip.stored_data(*zip.find(prefix + "data.pkl")));
  size_t pos = 0;
  BALLAST_ASSIGN_OR_RETURN(uint32_t root, up.load(pkl, pos));
  for (const auto& [key, idx] : up.storages()) {
    const Obj& s = up.at(idx);
    const ZipEntry* e = zip.find(prefix + "data/" + key);
    if (!e) return bad(path, "storage '" + key + "' has no record " + prefix + "data/" + key);
    BALLAST_ASSIGN_OR_RETURN(auto bytes, zip.stored_data(*e));
    const uint64_t need = static_cast<uint64_t>(s.i) * s.storage_type->elem_bytes;
    if (bytes.size() < need)
      return bad(path, "storage '" + key + "' holds " + std::to_string(bytes.size()) + " bytes, the pickle says " +
                           std::to_string(s.i) + " x " + std::to_string(s.storage_type->elem_bytes) + " (truncated?)");
    out[key] = aligned(bytes.first(need), s.storage_type->elem_bytes, keep);
  }
  return root;
}

Result<uint32_t> read_legacy(const std::shared_ptr<MappedFile>& mf, Unpickler& up, StorageBytes& out, Keep& keep) {
  const std::string& path = mf->path();
  const std::span<const uint8_t> bytes(mf->data(), mf->size());
  size_t pos = 0;
  BALLAST_ASSIGN_OR_RETURN(uint32_t magic, up.load(bytes, pos));
  const Obj& m = up.at(magic);
  if (m.kind != Kind::kBigInt || m.s.size() != sizeof kLegacyMagic ||
      std::memcmp(m.s.data(), kLegacyMagic, sizeof kLegacyMagic) != 0)
    return bad(path, "not a PyTorch checkpoint (neither a zip archive nor the legacy magic number)");
  BALLAST_ASSIGN_OR_RETURN(uint32_t proto, up.load(bytes, pos));
  if (up.at(proto).kind != Kind::kInt || up.at(proto).i != kLegacyProtocol)
    return error(ErrorCode::kUnsupported,
                 path + ": legacy torch.save protocol is not " + std::to_string(kLegacyProtocol));
  BALLAST_ASSIGN_OR_RETURN(uint32_t sys_info, up.load(bytes, pos));
  if (up.at(sys_info).kind != Kind::kDict) return bad(path, "legacy sys_info is not a dict");
  if (const Obj* le = dict_get(up, up.at(sys_info), "little_endian"); le && le->kind == Kind::kBool && !le->i)
    return error(ErrorCode::kUnsupported, path + ": written on a big-endian machine; only little-endian is supported");
  BALLAST_ASSIGN_OR_RETURN(uint32_t root, up.load(bytes, pos));
  BALLAST_ASSIGN_OR_RETURN(uint32_t keys_idx, up.load(bytes, pos));
  const Obj& keys = up.at(keys_idx);
  if (keys.kind != Kind::kList) return bad(path, "legacy storage key list is not a list");
  for (uint32_t k : keys.items) {
    if (up.at(k).kind != Kind::kStr) return bad(path, "legacy storage key list holds a non-string");
    const std::string& key = up.at(k).s;
    auto it = up.storages().find(key);
    if (it == up.storages().end()) return bad(path, "storage '" + key + "' is listed but no tensor uses it");
    const Obj& s = up.at(it->second);
    if (!mf->contains(pos, 8)) return bad(path, "storage '" + key + "' at byte " + std::to_string(pos) + ": truncated");
    int64_t count = 0;
    std::memcpy(&count, mf->data() + pos, 8);
    if (count != s.i)
      return bad(path, "storage '" + key + "' at byte " + std::to_string(pos) + " holds " + std::to_string(count) +
                           " elements, the pickle says " + std::to_string(s.i));
    pos += 8;
    const uint64_t n = static_cast<uint64_t>(s.i) * s.storage_type->elem_bytes;
    if (!mf->contains(pos, n))
      return bad(path, "storage '" + key + "' [" + std::to_string(pos) + ", +" + std::to_string(n) +
                           ") runs past the end of the file (" + std::to_string(mf->size()) + " bytes; truncated?)");
    if (out.count(key)) return bad(path, "storage '" + key + "' is listed twice");
    out[key] = aligned(bytes.subspan(pos, n), s.storage_type->elem_bytes, keep);
    pos += n;
  }
  return root;
}

std::string shape_text(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

// One state-dict entry -> a tensor view into its storage's bytes.
Result<SafeTensor> tensor_view(const std::string& path, const std::string& name, const Unpickler& up, const Obj& t,
                               const StorageBytes& storages) {
  auto fail = [&](const std::string& msg) { return bad(path, "tensor '" + name + "': " + msg); };
  const Obj& st = up.at(t.items[0]);
  const uint32_t es = st.storage_type->elem_bytes;
  uint64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / es / static_cast<uint64_t>(d))
      return fail("shape " + shape_text(t.shape) + " overflows");
    numel *= static_cast<uint64_t>(d);
  }
  if (numel) {
    // Row-major contiguous: each stride is the product of the sizes after it (size-1 dims are free).
    uint64_t expect = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      if (t.shape[d] != 1 && static_cast<uint64_t>(t.stride[d]) != expect)
        return error(ErrorCode::kUnsupported, path + ": tensor '" + name + "': stride " + shape_text(t.stride) +
                                                  " of shape " + shape_text(t.shape) +
                                                  " is not contiguous; ballast maps tensors in place and does not "
                                                  "copy strided views");
      expect *= static_cast<uint64_t>(t.shape[d]);
    }
  }
  const uint64_t elems = static_cast<uint64_t>(st.i), off = static_cast<uint64_t>(t.i);
  if (off > elems || numel > elems - off)
    return fail("elements [" + std::to_string(off) + ", +" + std::to_string(numel) + ") lie outside storage '" + st.s +
                "' of " + std::to_string(elems) + " elements");
  auto it = storages.find(st.s);
  if (it == storages.end()) return fail("storage '" + st.s + "' has no data in the file");
  SafeTensor v;
  v.name = name;
  v.dtype = *st.storage_type->dtype;  // the caller sets other dtypes aside
  for (int64_t d : t.shape) v.shape.push_back(static_cast<uint64_t>(d));
  v.data = it->second.data() + (static_cast<uint64_t>(st.view_offset) + off) * es;
  v.nbytes = numel * es;
  v.file = path;
  return v;
}

}  // namespace

Status TorchBinSet::add_file(const std::string& path) {
  BALLAST_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  keep_.push_back(mf);
  Unpickler up(path);
  StorageBytes storages;
  uint32_t root = 0;
  if (ZipReader::looks_like_zip(*mf)) {
    BALLAST_ASSIGN_OR_RETURN(root, read_zip(mf, up, storages, keep_));
  } else if (mf->size() >= 2 && mf->data()[0] == 0x80) {  // PROTO: a legacy stream of pickles
    BALLAST_ASSIGN_OR_RETURN(root, read_legacy(mf, up, storages, keep_));
  } else {
    return bad(path, "not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save stream)");
  }
  const Obj& sd = up.at(root);
  if (sd.kind != Kind::kDict)
    return bad(path, std::string("the pickle holds a ") + Unpickler::kind_name(sd.kind) + ", not a state dict");
  for (size_t i = 0; i + 1 < sd.items.size(); i += 2) {
    const Obj& k = up.at(sd.items[i]);
    const Obj& t = up.at(sd.items[i + 1]);
    if (k.kind != Kind::kStr) return bad(path, std::string("state dict key is a ") + Unpickler::kind_name(k.kind));
    if (t.kind != Kind::kTensor)
      return bad(path, "state dict entry '" + k.s + "' is a " + Unpickler::kind_name(t.kind) + ", not a tensor");
    if (tensors_.count(k.s) || unsupported_.count(k.s)) return bad(path, "tensor '" + k.s + "' defined twice");
    const pickle::StorageType* type = up.at(t.items[0]).storage_type;
    if (!type->dtype) {  // never read: an unused buffer must not block loading
      unsupported_[k.s] = std::string(type->dtype_name) + " in " + path;
      continue;
    }
    BALLAST_ASSIGN_OR_RETURN(tensors_[k.s], tensor_view(path, k.s, up, t, storages));
  }
  return Status();
}

Result<std::shared_ptr<TorchBinSet>> TorchBinSet::open_file(const std::string& path) {
  auto s = std::make_shared<TorchBinSet>();
  BALLAST_RETURN_IF_ERROR(s->add_file(path));
  return s;
}

Result<std::shared_ptr<TorchBinSet>> TorchBinSet::open_dir(const std::string& dir) {
  auto s = std::make_shared<TorchBinSet>();
  const fs::path single = fs::path(dir) / "pytorch_model.bin";
  const fs::path index = fs::path(dir) / "pytorch_model.bin.index.json";
  if (fs::exists(index)) {
    BALLAST_ASSIGN_OR_RETURN(auto idx, read_shard_index(index.string()));
    for (auto& sh : idx.shards) BALLAST_RETURN_IF_ERROR(s->add_file((fs::path(dir) / sh).string()));
    for (auto& [k, shard] : idx.weight_map)
      if (!s->find(k) && !s->unsupported_.count(k))
        return error(ErrorCode::kFormatError, index.string() + ": tensor '" + k + "' not found in " + shard);
  } else if (fs::exists(single)) {
    BALLAST_RETURN_IF_ERROR(s->add_file(single.string()));
  } else {
    return error(ErrorCode::kNotFound, dir + ": no pytorch_model.bin or pytorch_model.bin.index.json");
  }
  return s;
}

const SafeTensor* TorchBinSet::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace ballast::io
