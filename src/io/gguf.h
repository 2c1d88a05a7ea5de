// GGUF v2/v3 reader: metadata, tensor infos, mmap'd tensor data. Every header field is
// checked against the file; a malformed file yields one error naming the file and field.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace ballast::io {

enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// One metadata value. Scalars keep their integer/float value; arrays keep their
// elements in the vector matching the element type (strings, ints or floats).
struct GgufValue {
  GgufType type = GgufType::kU8;
  GgufType elem_type = GgufType::kU8;  // for arrays
  int64_t i = 0;                       // integer and bool scalars (u64 stored bitwise)
  double f = 0;                        // float scalars
  std::string s;                       // string scalar
  std::vector<std::string> strs;       // array of strings
  std::vector<int64_t> ints;           // array of integers / bools
  std::vector<double> floats;          // array of floats
  bool is_array() const { return type == GgufType::kArray; }
  size_t array_size() const { return strs.size() + ints.size() + floats.size(); }
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // GGML order: dims[0] is the contiguous (row) dimension
  DType dtype = DType::kF32;
  uint64_t offset = 0;         // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;
  uint64_t n_elements() const {
    uint64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
};

class GgufFile {
 public:
  static Result<std::shared_ptr<GgufFile>> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(const std::string& name) const;
  const GgufValue* get(const std::string& key) const;

  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key) const;  // any integer scalar or bool
  std::optional<double> get_float(const std::string& key) const;  // any numeric scalar
  std::optional<bool> get_bool(const std::string& key) const;
  const std::vector<std::string>* get_strings(const std::string& key) const;
  const std::vector<int64_t>* get_ints(const std::string& key) const;
  const std::vector<double>* get_floats(const std::string& key) const;
  // "general.architecture", e.g. "llama", "gemma3".
  std::string architecture() const { return get_string("general.architecture").value_or(""); }

  std::shared_ptr<MappedFile> file() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  friend class GgufParser;
};

}  // namespace ballast::io
