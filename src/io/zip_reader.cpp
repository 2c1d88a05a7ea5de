// Zip reading for torch.save archives: end of central directory (+ zip64 locator/record),
// central directory entries (+ zip64 extra field), local headers. No decompression: torch
// writes every record stored, so tensor bytes are used straight from the mapping.
#include "io/zip_reader.h"

#include <algorithm>
#include <cstring>

namespace ballast::io {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kEnd64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kEnd64LocatorSize = 20, kEnd64Size = 56, kCentralSize = 46, kLocalSize = 30;

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

bool ZipReader::looks_like_zip(const MappedFile& f) {
  return f.size() >= 4 && le(f.data(), 4) == kLocalSig;
}

Result<ZipReader> ZipReader::open(std::shared_ptr<MappedFile> file) {
  ZipReader z;
  z.file_ = std::move(file);
  BALLAST_RETURN_IF_ERROR(z.read_central_directory());
  return z;
}

Status ZipReader::read_central_directory() {
  const uint8_t* d = file_->data();
  const uint64_t size = file_->size();
  auto fail = [&](const std::string& msg) {
    return error(ErrorCode::kFormatError, file_->path() + ": zip archive: " + msg);
  };
  if (size < kEndSize) return fail("file shorter than an end-of-central-directory record (truncated)");
  // The end record is last, followed only by a comment of at most 64 KiB.
  uint64_t end = UINT64_MAX;
  const uint64_t lowest = size - kEndSize > 0xFFFF ? size - kEndSize - 0xFFFF : 0;
  for (uint64_t p = size - kEndSize + 1; p-- > lowest;)
    if (le(d + p, 4) == kEndSig && p + kEndSize + le(d + p + 20, 2) <= size) {
      end = p;
      break;
    }
  if (end == UINT64_MAX) return fail("no end-of-central-directory record (truncated or not a zip file)");
  uint64_t count = le(d + end + 10, 2), cd_size = le(d + end + 12, 4), cd_off = le(d + end + 16, 4);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
    if (end < kEnd64LocatorSize || le(d + end - kEnd64LocatorSize, 4) != kEnd64LocatorSig)
      return fail("zip64 sizes announced but the zip64 end-of-central-directory locator is missing");
    const uint64_t rec = le(d + end - kEnd64LocatorSize + 8, 8);
    if (!file_->contains(rec, kEnd64Size) || le(d + rec, 4) != kEnd64Sig)
      return fail("zip64 end-of-central-directory record at offset " + std::to_string(rec) + " is missing");
    count = le(d + rec + 32, 8);
    cd_size = le(d + rec + 40, 8);
    cd_off = le(d + rec + 48, 8);
  }
  if (!file_->contains(cd_off, cd_size))
    return fail("central directory [" + std::to_string(cd_off) + ", +" + std::to_string(cd_size) +
                ") lies outside the file of " + std::to_string(size) + " bytes (truncated?)");
  if (count > cd_size / kCentralSize) return fail(std::to_string(count) + " entries cannot fit the central directory");
  uint64_t p = cd_off;
  const uint64_t cd_end = cd_off + cd_size;
  entries_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (cd_end - p < kCentralSize || le(d + p, 4) != kCentralSig)
      return fail("central directory entry " + std::to_string(i) + " is malformed");
    const uint8_t* h = d + p;
    const uint64_t name_len = le(h + 28, 2), extra_len = le(h + 30, 2), comment_len = le(h + 32, 2);
    if (cd_end - p - kCentralSize < name_len + extra_len + comment_len)
      return fail("central directory entry " + std::to_string(i) + " runs past the directory");
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(h + kCentralSize), name_len);
    if (le(h + 8, 2) & 1) return fail("entry '" + e.name + "' is encrypted");
    e.method = static_cast<uint16_t>(le(h + 10, 2));
    e.stored_size = le(h + 20, 4);
    e.size = le(h + 24, 4);
    e.header_offset = le(h + 42, 4);
    // Zip64 extra field: the 64-bit values of whichever fields above are 0xFFFFFFFF, in order.
    const uint8_t* x = h + kCentralSize + name_len;
    for (uint64_t q = 0; q + 4 <= extra_len;) {
      const uint64_t id = le(x + q, 2), len = le(x + q + 2, 2);
      if (q + 4 + len > extra_len) return fail("entry '" + e.name + "': extra field runs past its header");
      if (id == 0x0001) {
        uint64_t r = q + 4;
        for (uint64_t* f : {&e.size, &e.stored_size, &e.header_offset}) {
          if (*f != 0xFFFFFFFF) continue;
          if (r + 8 > q + 4 + len) return fail("entry '" + e.name + "': zip64 extra field too short");
          *f = le(x + r, 8);
          r += 8;
        }
      }
      q += 4 + len;
    }
    entries_.push_back(std::move(e));
    p += kCentralSize + name_len + extra_len + comment_len;
  }
  return Status();
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const ZipEntry& e) { return e.name == name; });
  return it == entries_.end() ? nullptr : &*it;
}

Result<std::span<const uint8_t>> ZipReader::stored_data(const ZipEntry& e) const {
  auto fail = [&](const std::string& msg) {
    return error(ErrorCode::kFormatError, file_->path() + ": zip entry '" + e.name + "': " + msg);
  };
  if (e.method != 0)
    return fail("compressed (method " + std::to_string(e.method) + "); torch.save stores entries uncompressed");
  if (e.size != e.stored_size) return fail("stored entry with different compressed and uncompressed sizes");
  const uint8_t* d = file_->data();
  if (!file_->contains(e.header_offset, kLocalSize) || le(d + e.header_offset, 4) != kLocalSig)
    return fail("local header at offset " + std::to_string(e.header_offset) + " is missing (truncated file?)");
  const uint8_t* h = d + e.header_offset;
  const uint64_t name_len = le(h + 26, 2), extra_len = le(h + 28, 2);
  if (name_len != e.name.size() || !file_->contains(e.header_offset + kLocalSize, name_len) ||
      std::memcmp(h + kLocalSize, e.name.data(), name_len) != 0)
    return fail("local header names a different entry");
  const uint64_t start = e.header_offset + kLocalSize + name_len + extra_len;
  if (!file_->contains(start, e.size))
    return fail("data [" + std::to_string(start) + ", +" + std::to_string(e.size) + ") lies outside the file of " +
                std::to_string(file_->size()) + " bytes (truncated?)");
  return std::span<const uint8_t>(d + start, e.size);
}

}  // namespace ballast::io
