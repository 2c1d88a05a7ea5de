// Restricted unpickler for PyTorch state dicts: a small pickle VM that knows the opcodes
// torch.save emits and a fixed list of globals (OrderedDict, the tensor rebuild functions,
// the storage types). Any other global is refused by name when the pickle names it; nothing
// is ever called: a REDUCE of an allowed function builds a plain record (dict, tensor).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace ballast::io::pickle {

// torch.<Name>Storage: the element type of a storage. dtype is empty for types ballast can
// parse but not compute with (int64 buffers, bool masks...): such tensors are reported, not loaded.
struct StorageType {
  const char* name;          // "FloatStorage"
  const char* dtype_name;    // "float32"
  std::optional<DType> dtype;
  uint32_t elem_bytes;
};

enum class Kind : uint8_t {
  kNone, kBool, kInt, kBigInt, kFloat, kStr, kBytes, kTuple, kList, kDict,
  kGlobal,   // an allowed global (Callable)
  kStorage,  // a persistent id ('storage', type, key, location, numel[, view])
  kTensor,   // the result of _rebuild_tensor_v2
};

enum class Callable : uint8_t { kOrderedDict, kRebuildTensorV2, kRebuildParameter, kStorageType };

// One object of the VM. Objects live in an arena and refer to each other by index, so
// neither cycles nor deep nesting in a hostile pickle can recurse or leak.
struct Obj {
  Kind kind = Kind::kNone;
  int64_t i = 0;                  // kBool, kInt; kStorage: numel (elements); kTensor: storage offset (elements)
  double f = 0;                   // kFloat
  std::string s;                  // kStr, kBytes, kBigInt (little-endian two's complement),
                                  // kGlobal: "module.name", kStorage: key
  std::vector<uint32_t> items;    // kTuple, kList: elements; kDict: key0, value0, key1, value1...;
                                  // kTensor: {storage object}
  std::vector<int64_t> shape;     // kTensor: sizes, outermost first
  std::vector<int64_t> stride;    // kTensor: strides in elements, same order
  Callable callable = Callable::kOrderedDict;      // kGlobal
  const StorageType* storage_type = nullptr;       // kGlobal (kStorageType), kStorage
  int64_t view_offset = 0;        // kStorage: element offset into the root storage `s` (legacy views)
};

// The storage type torch.<name>, or null.
const StorageType* find_storage_type(const std::string& name);

class Unpickler {
 public:
  // `source` names the file in every error message.
  explicit Unpickler(std::string source) : source_(std::move(source)) {}
  // Runs the pickle that starts at bytes[pos] up to its STOP; pos then points past it.
  // Returns the index of the unpickled object. Several pickles may be loaded in turn
  // (the legacy format is a sequence of them); each has its own memo.
  Result<uint32_t> load(std::span<const uint8_t> bytes, size_t& pos);
  const Obj& at(uint32_t i) const { return objs_[i]; }
  // Storage objects by key, as the persistent ids named them.
  const std::map<std::string, uint32_t>& storages() const { return storages_; }
  static const char* kind_name(Kind k);

 private:
  Status op(uint8_t code);
  Status op_literal(uint8_t code);
  Status push_seq(Kind k, std::vector<uint32_t> items);
  Result<std::vector<uint32_t>> pop_n(size_t n);
  Status fail(const std::string& msg) const;
  Status refuse_global(const std::string& module, const std::string& name) const;
  uint32_t push_new(Obj o);
  Result<uint32_t> pop();
  Result<std::vector<uint32_t>> pop_mark();
  Result<uint32_t> top() const;
  Status read(size_t n, const uint8_t** p);
  Result<uint64_t> read_le(int n);
  Result<std::string> read_line();
  Status push_global(const std::string& module, const std::string& name);
  Status memo_put(uint64_t key);
  Status memo_get(uint64_t key);
  Status reduce();
  Status build();
  Status persistent_id();
  Status set_items(uint32_t dict, const std::vector<uint32_t>& kv);
  Status append_items(uint32_t list, const std::vector<uint32_t>& v);
  Result<uint32_t> rebuild_tensor(const std::vector<uint32_t>& args);
  Result<std::vector<int64_t>> int_tuple(uint32_t idx, const char* what) const;
  std::string describe(uint32_t idx) const;

  std::string source_;
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0, op_pos_ = 0;
  std::vector<Obj> objs_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;   // stack heights at each MARK
  std::unordered_map<uint64_t, uint32_t> memo_;
  std::map<std::string, uint32_t> storages_;
};

}  // namespace ballast::io::pickle
