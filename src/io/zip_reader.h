// Read-only zip archive index over a mapped file: the central directory (zip64 too) and
// each entry's local header are checked, and stored (uncompressed) entries are used in place.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"

namespace ballast::io {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;        // 0 = stored; anything else is compressed
  uint64_t size = 0;          // uncompressed bytes
  uint64_t stored_size = 0;   // bytes in the file
  uint64_t header_offset = 0; // local file header
};

class ZipReader {
 public:
  // Errors name the file and the structure at fault.
  static Result<ZipReader> open(std::shared_ptr<MappedFile> file);
  static bool looks_like_zip(const MappedFile& f);  // starts with a local file header

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;
  // The bytes of a stored entry, inside the mapping; an error for compressed entries or a
  // local header that disagrees with the central directory or leaves the file.
  Result<std::span<const uint8_t>> stored_data(const ZipEntry& e) const;
  const MappedFile& file() const { return *file_; }

 private:
  Status read_central_directory();
  std::shared_ptr<MappedFile> file_;
  std::vector<ZipEntry> entries_;
};

}  // namespace ballast::io
