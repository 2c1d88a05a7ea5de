// safetensors: 8-byte little-endian header length, JSON header, then raw data.
#include "io/safetensors.h"

#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/shard_index.h"

namespace ballast::io {

namespace fs = std::filesystem;

namespace {
std::optional<DType> st_dtype(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return std::nullopt;
}
}  // namespace

Status SafetensorsSet::add_file(const std::string& path) {
  BALLAST_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  auto fail = [&](const std::string& field, const std::string& msg) {
    return error(ErrorCode::kFormatError, path + ": safetensors field '" + field + "': " + msg);
  };
  if (mf->size() < 8) return fail("header_size", "file shorter than 8 bytes (truncated)");
  uint64_t hlen = 0;
  std::memcpy(&hlen, mf->data(), 8);
  if (hlen > mf->size() - 8 || hlen > (100ull << 20))
    return fail("header_size", "header length " + std::to_string(hlen) + " exceeds file size " +
                                   std::to_string(mf->size()));
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(reinterpret_cast<const char*>(mf->data() + 8),
                              reinterpret_cast<const char*>(mf->data() + 8 + hlen));
  } catch (const std::exception& e) {
    return fail("header", std::string("invalid JSON: ") + e.what());
  }
  if (!h.is_object()) return fail("header", "not a JSON object");
  const uint64_t data_start = 8 + hlen;
  const uint64_t data_size = mf->size() - data_start;
  for (auto& [name, info] : h.items()) {
    if (name == "__metadata__") continue;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets"))
      return fail(name, "missing dtype/shape/data_offsets");
    SafeTensor t;
    t.name = name;
    t.file = path;
    if (!info["dtype"].is_string()) return fail(name + ".dtype", "not a string");
    auto dt = st_dtype(info["dtype"].get<std::string>());
    if (!dt) return fail(name + ".dtype", "unsupported dtype " + info["dtype"].get<std::string>());
    t.dtype = *dt;
    uint64_t n = 1;
    if (!info["shape"].is_array()) return fail(name + ".shape", "not an array");
    for (auto& d : info["shape"]) {
      if (!d.is_number_unsigned()) return fail(name + ".shape", "non-integer dimension");
      uint64_t v = d.get<uint64_t>();
      if (v && n > std::numeric_limits<uint64_t>::max() / v) return fail(name + ".shape", "overflow");
      n *= v;
      t.shape.push_back(v);
    }
    auto& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      return fail(name + ".data_offsets", "must be [begin, end]");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    uint64_t esize = dtype_info(t.dtype).block_bytes;
    if (e < b || e > data_size)
      return fail(name + ".data_offsets", "[" + std::to_string(b) + ", " + std::to_string(e) +
                                              ") lies outside the data section of " +
                                              std::to_string(data_size) + " bytes (truncated file?)");
    if (n > std::numeric_limits<uint64_t>::max() / esize || e - b != n * esize)
      return fail(name + ".data_offsets", "byte size " + std::to_string(e - b) +
                                              " does not match shape x dtype (" +
                                              std::to_string(n * esize) + ")");
    t.data = mf->data() + data_start + b;
    t.nbytes = e - b;
    if (tensors_.count(name)) return fail(name, "tensor defined twice");
    tensors_[name] = std::move(t);
  }
  files_.push_back(std::move(mf));
  return Status();
}

Result<std::shared_ptr<SafetensorsSet>> SafetensorsSet::open_file(const std::string& path) {
  auto s = std::make_shared<SafetensorsSet>();
  BALLAST_RETURN_IF_ERROR(s->add_file(path));
  return s;
}

Result<std::shared_ptr<SafetensorsSet>> SafetensorsSet::open_dir(const std::string& dir) {
  auto s = std::make_shared<SafetensorsSet>();
  fs::path single = fs::path(dir) / "model.safetensors";
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    BALLAST_ASSIGN_OR_RETURN(auto idx, read_shard_index(index.string()));
    for (auto& sh : idx.shards) BALLAST_RETURN_IF_ERROR(s->add_file((fs::path(dir) / sh).string()));
    for (auto& [k, shard] : idx.weight_map)
      if (!s->find(k))
        return error(ErrorCode::kFormatError, index.string() + ": tensor '" + k + "' not found in " + shard);
  } else if (fs::exists(single)) {
    BALLAST_RETURN_IF_ERROR(s->add_file(single.string()));
  } else {
    return error(ErrorCode::kNotFound,
                 dir + ": no model.safetensors or model.safetensors.index.json");
  }
  return s;
}

const SafeTensor* SafetensorsSet::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace ballast::io
