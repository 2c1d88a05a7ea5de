// Read-only memory mapping of a whole file; weights are used in place from it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace ballast {

// Drops this process's resident pages of [p, p + n) when the range lies inside a live
// MappedFile (read-only file pages: later reads fault them back in from the page
// cache); does nothing otherwise. For data the process has copied elsewhere (the CPU
// backend's repacked weights), so it is not counted twice in the resident set.
void release_mapped_pages(const void* p, size_t n);

class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // True when [offset, offset+len) lies inside the file (overflow-safe).
  bool contains(uint64_t offset, uint64_t len) const {
    return offset <= size_ && len <= size_ - offset;
  }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace ballast
