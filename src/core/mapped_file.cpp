// mmap wrapper.
#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

namespace ballast {
namespace {

// Live mappings: begin -> end. Only these ranges may be released.
std::mutex g_maps_mu;
std::map<uintptr_t, uintptr_t>& live_maps() {
  static std::map<uintptr_t, uintptr_t> m;
  return m;
}

}  // namespace

void release_mapped_pages(const void* p, size_t n) {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + n;
  std::lock_guard<std::mutex> lock(g_maps_mu);
  auto& maps = live_maps();
  auto it = maps.upper_bound(b);
  if (it == maps.begin()) return;
  --it;
  if (b < it->first || e > it->second) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t pb = (b + page - 1) / page * page, pe = e / page * page;  // whole pages inside the range
  if (pe > pb) madvise(reinterpret_cast<void*>(pb), pe - pb, MADV_DONTNEED);
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error(ErrorCode::kIoError, path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return error(ErrorCode::kIoError, path + ": not a regular file");
  }
  auto mf = std::shared_ptr<MappedFile>(new MappedFile());
  mf->path_ = path;
  mf->size_ = static_cast<size_t>(st.st_size);
  if (mf->size_ > 0) {
    void* p = mmap(nullptr, mf->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return error(ErrorCode::kIoError, path + ": mmap failed: " + std::strerror(errno));
    }
    mf->data_ = static_cast<const uint8_t*>(p);
    std::lock_guard<std::mutex> lock(g_maps_mu);
    live_maps()[reinterpret_cast<uintptr_t>(p)] = reinterpret_cast<uintptr_t>(p) + mf->size_;
  }
  ::close(fd);
  return mf;
}

MappedFile::~MappedFile() {
  if (!data_) return;
  {
    std::lock_guard<std::mutex> lock(g_maps_mu);
    live_maps().erase(reinterpret_cast<uintptr_t>(data_));
  }
  munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace ballast
