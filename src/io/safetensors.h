// safetensors reader: single file or sharded (model.safetensors.index.json), mmap'd.
// Header offsets, dtypes and shapes are checked against the file before any use.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace ballast::io {

struct SafeTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;  // row-major, as stored (HF order: [out, in] for Linear)
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  std::string file;             // which shard
};

class SafetensorsSet {
 public:
  // dir holds model.safetensors or model.safetensors.index.json (+ shards).
  static Result<std::shared_ptr<SafetensorsSet>> open_dir(const std::string& dir);
  static Result<std::shared_ptr<SafetensorsSet>> open_file(const std::string& path);
  const std::map<std::string, SafeTensor>& tensors() const { return tensors_; }
  const SafeTensor* find(const std::string& name) const;

 private:
  Status add_file(const std::string& path);
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, SafeTensor> tensors_;
};

}  // namespace ballast::io
