// PyTorch checkpoints (pytorch_model.bin, or shards listed by pytorch_model.bin.index.json):
// the zip archive of torch >= 1.6 or the legacy stream of pickles, read with the restricted
// unpickler (io/pickle_vm.h) into the same tensor views as safetensors. Tensor bytes are
// used in place from the mapped file; nothing in the file is ever executed.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "io/safetensors.h"

namespace ballast::io {

class TorchBinSet {
 public:
  // dir holds pytorch_model.bin or pytorch_model.bin.index.json (+ shards).
  static Result<std::shared_ptr<TorchBinSet>> open_dir(const std::string& dir);
  static Result<std::shared_ptr<TorchBinSet>> open_file(const std::string& path);
  const std::map<std::string, SafeTensor>& tensors() const { return tensors_; }
  const SafeTensor* find(const std::string& name) const;
  // Tensors whose dtype ballast does not compute with (int64 buffers, bool masks): parsed and
  // checked, not loaded. name -> "int64 in <file>".
  const std::map<std::string, std::string>& unsupported() const { return unsupported_; }

 private:
  Status add_file(const std::string& path);
  std::vector<std::shared_ptr<const void>> keep_;  // mapped files, realigned storage copies
  std::map<std::string, SafeTensor> tensors_;
  std::map<std::string, std::string> unsupported_;
};

}  // namespace ballast::io
