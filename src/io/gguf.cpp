// GGUF parser. Every read is bounds-checked against the mapped file; counts are
// checked against what the remaining bytes could possibly hold before allocating.
#include "io/gguf.h"

#include <cstring>
#include <limits>

namespace ballast::io {

namespace {
constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxDims = 4;
constexpr uint64_t kMaxStringLen = 1ull << 30;
}  // namespace

class GgufParser {
 public:
  GgufParser(const MappedFile& f, GgufFile& out) : f_(f), out_(out) {}

  Status parse() {
    uint32_t magic = 0;
    BALLAST_RETURN_IF_ERROR(read_pod(magic, "magic"));
    if (magic != kMagic) return fail("magic", "not a GGUF file (bad magic)");
    BALLAST_RETURN_IF_ERROR(read_pod(out_.version_, "version"));
    if (out_.version_ < 2 || out_.version_ > 3)
      return fail("version", "unsupported GGUF version " + std::to_string(out_.version_));
    uint64_t n_tensors = 0, n_kv = 0;
    BALLAST_RETURN_IF_ERROR(read_pod(n_tensors, "tensor_count"));
    BALLAST_RETURN_IF_ERROR(read_pod(n_kv, "metadata_kv_count"));
    // Each kv needs >= 12 bytes and each tensor info >= 24: reject absurd counts early.
    if (n_kv > remaining() / 12) return fail("metadata_kv_count", "count exceeds file size");
    if (n_tensors > remaining() / 24) return fail("tensor_count", "count exceeds file size");

    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key;
      BALLAST_RETURN_IF_ERROR(read_string(key, "metadata key #" + std::to_string(i)));
      uint32_t type = 0;
      BALLAST_RETURN_IF_ERROR(read_pod(type, key + " (type)"));
      GgufValue v;
      BALLAST_RETURN_IF_ERROR(read_value(type, v, key, 0));
      out_.kv_[key] = std::move(v);
    }

    uint64_t alignment = 32;
    if (auto a = out_.get_int("general.alignment")) {
      if (*a <= 0 || (*a & (*a - 1)) != 0 || *a > 1 << 20)
        return fail("general.alignment", "must be a power of two, got " + std::to_string(*a));
      alignment = static_cast<uint64_t>(*a);
    }

    out_.tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      BALLAST_RETURN_IF_ERROR(read_string(t.name, "tensor info #" + std::to_string(i) + " name"));
      uint32_t n_dims = 0;
      BALLAST_RETURN_IF_ERROR(read_pod(n_dims, t.name + " n_dims"));
      if (n_dims == 0 || n_dims > kMaxDims)
        return fail(t.name + " n_dims", "invalid dimension count " + std::to_string(n_dims));
      uint64_t n_el = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        uint64_t dim = 0;
        BALLAST_RETURN_IF_ERROR(read_pod(dim, t.name + " dims"));
        if (dim == 0 || dim > (1ull << 40) || n_el > std::numeric_limits<uint64_t>::max() / dim)
          return fail(t.name + " dims", "invalid dimension " + std::to_string(dim));
        n_el *= dim;
        t.dims.push_back(dim);
      }
      uint32_t type = 0;
      BALLAST_RETURN_IF_ERROR(read_pod(type, t.name + " type"));
      auto dt = dtype_from_ggml(type);
      if (!dt) return fail(t.name + " type", "unsupported GGML tensor type " + std::to_string(type));
      t.dtype = *dt;
      BALLAST_RETURN_IF_ERROR(read_pod(t.offset, t.name + " offset"));
      auto rb = row_bytes(t.dtype, t.dims[0]);
      if (!rb)
        return fail(t.name + " dims", "row of " + std::to_string(t.dims[0]) +
                                          " elements is not a multiple of the " +
                                          dtype_name(t.dtype) + " block size");
      uint64_t rows = n_el / t.dims[0];
      if (rows && *rb > std::numeric_limits<uint64_t>::max() / rows)
        return fail(t.name + " dims", "tensor size overflows");
      t.nbytes = *rb * rows;
      if (t.offset % alignment)
        return fail(t.name + " offset", "offset " + std::to_string(t.offset) + " not aligned to " +
                                            std::to_string(alignment));
      if (out_.tensor_index_.count(t.name)) return fail(t.name, "duplicate tensor name");
      out_.tensor_index_[t.name] = out_.tensors_.size();
      out_.tensors_.push_back(std::move(t));
    }

    uint64_t data_start = (pos_ + alignment - 1) / alignment * alignment;
    for (auto& t : out_.tensors_) {
      if (data_start > f_.size() || !f_.contains(data_start + t.offset, t.nbytes) ||
          t.offset > f_.size())
        return fail(t.name + " offset",
                    "tensor data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                        ") lies past the end of the file (data section starts at " +
                        std::to_string(data_start) + ", file is " + std::to_string(f_.size()) +
                        " bytes)");
      t.data = f_.data() + data_start + t.offset;
    }
    return Status();
  }

 private:
  uint64_t remaining() const { return f_.size() - pos_; }

  Status fail(const std::string& field, const std::string& msg) const {
    return error(ErrorCode::kFormatError, f_.path() + ": GGUF field '" + field + "': " + msg);
  }

  Status read_bytes(void* dst, uint64_t n, const std::string& field) {
    if (!f_.contains(pos_, n)) return fail(field, "truncated file (read past the end)");
    std::memcpy(dst, f_.data() + pos_, n);
    pos_ += n;
    return Status();
  }

  template <class T>
  Status read_pod(T& v, const std::string& field) {
    return read_bytes(&v, sizeof(T), field);
  }

  Status read_string(std::string& s, const std::string& field) {
    uint64_t len = 0;
    BALLAST_RETURN_IF_ERROR(read_pod(len, field));
    if (len > kMaxStringLen || len > remaining()) return fail(field, "string length exceeds file");
    s.assign(reinterpret_cast<const char*>(f_.data() + pos_), len);
    pos_ += len;
    return Status();
  }

  static uint64_t scalar_size(GgufType t) {
    switch (t) {
      case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
      case GgufType::kU16: case GgufType::kI16: return 2;
      case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
      case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
      default: return 0;
    }
  }

  Status read_scalar(GgufType t, int64_t& i, double& f, bool& is_float, const std::string& key) {
    is_float = false;
    switch (t) {
      case GgufType::kU8: { uint8_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = v; break; }
      case GgufType::kI8: { int8_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = v; break; }
      case GgufType::kBool: {
        uint8_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key));
        if (v > 1) return fail(key, "bool value " + std::to_string(v));
        i = v; break;
      }
      case GgufType::kU16: { uint16_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = v; break; }
      case GgufType::kI16: { int16_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = v; break; }
      case GgufType::kU32: { uint32_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = v; break; }
      case GgufType::kI32: { int32_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = v; break; }
      case GgufType::kU64: { uint64_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = static_cast<int64_t>(v); break; }
      case GgufType::kI64: { int64_t v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); i = v; break; }
      case GgufType::kF32: { float v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); f = v; is_float = true; break; }
      case GgufType::kF64: { double v; BALLAST_RETURN_IF_ERROR(read_pod(v, key)); f = v; is_float = true; break; }
      default: return fail(key, "bad scalar type");
    }
    return Status();
  }

  Status read_value(uint32_t type_raw, GgufValue& v, const std::string& key, int depth) {
    if (type_raw > 12) return fail(key, "unknown value type " + std::to_string(type_raw));
    v.type = static_cast<GgufType>(type_raw);
    if (v.type == GgufType::kString) return read_string(v.s, key);
    if (v.type == GgufType::kArray) {
      if (depth > 0) return fail(key, "nested arrays are not supported");
      uint32_t et = 0;
      uint64_t n = 0;
      BALLAST_RETURN_IF_ERROR(read_pod(et, key + " (array type)"));
      BALLAST_RETURN_IF_ERROR(read_pod(n, key + " (array length)"));
      if (et > 12 || et == static_cast<uint32_t>(GgufType::kArray))
        return fail(key, "bad array element type " + std::to_string(et));
      v.elem_type = static_cast<GgufType>(et);
      uint64_t min_elem = v.elem_type == GgufType::kString ? 8 : scalar_size(v.elem_type);
      if (n > remaining() / min_elem) return fail(key, "array length exceeds file size");
      if (v.elem_type == GgufType::kString) {
        v.strs.resize(n);
        for (auto& s : v.strs) BALLAST_RETURN_IF_ERROR(read_string(s, key));
      } else {
        for (uint64_t k = 0; k < n; ++k) {
          int64_t i = 0;
          double f = 0;
          bool is_float = false;
          BALLAST_RETURN_IF_ERROR(read_scalar(v.elem_type, i, f, is_float, key));
          if (is_float) v.floats.push_back(f); else v.ints.push_back(i);
        }
      }
      return Status();
    }
    bool is_float = false;
    BALLAST_RETURN_IF_ERROR(read_scalar(v.type, v.i, v.f, is_float, key));
    if (!is_float) v.f = static_cast<double>(v.i);
    return Status();
  }

  const MappedFile& f_;
  GgufFile& out_;
  uint64_t pos_ = 0;
};

Result<std::shared_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  BALLAST_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  auto g = std::shared_ptr<GgufFile>(new GgufFile());
  g->file_ = mf;
  GgufParser p(*mf, *g);
  BALLAST_RETURN_IF_ERROR(p.parse());
  return g;
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::get(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

static bool is_int_type(GgufType t) {
  return t != GgufType::kF32 && t != GgufType::kF64 && t != GgufType::kString &&
         t != GgufType::kArray;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  auto* v = get(key);
  if (!v || v->type != GgufType::kString) return std::nullopt;
  return v->s;
}
std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  auto* v = get(key);
  if (!v || !is_int_type(v->type)) return std::nullopt;
  return v->i;
}
std::optional<double> GgufFile::get_float(const std::string& key) const {
  auto* v = get(key);
  if (!v || v->type == GgufType::kString || v->type == GgufType::kArray) return std::nullopt;
  return v->f;
}
std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  auto* v = get(key);
  if (!v || !is_int_type(v->type)) return std::nullopt;
  return v->i != 0;
}
const std::vector<std::string>* GgufFile::get_strings(const std::string& key) const {
  auto* v = get(key);
  if (!v || !v->is_array() || v->elem_type != GgufType::kString) return nullptr;
  return &v->strs;
}
const std::vector<int64_t>* GgufFile::get_ints(const std::string& key) const {
  auto* v = get(key);
  if (!v || !v->is_array() || !is_int_type(v->elem_type)) return nullptr;
  return &v->ints;
}
const std::vector<double>* GgufFile::get_floats(const std::string& key) const {
  auto* v = get(key);
  if (!v || !v->is_array() ||
      (v->elem_type != GgufType::kF32 && v->elem_type != GgufType::kF64))
    return nullptr;
  return &v->floats;
}

}  // namespace ballast::io
