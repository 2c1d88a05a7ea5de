// Helpers shared by the fuzz targets.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace ballast::fuzz {

// Writes the input to a per-process temp file (the loaders under test take paths) and
// returns its path; `ext` is kept as the suffix for loaders that dispatch on it.
inline std::string temp_file(const uint8_t* data, size_t size, const std::string& ext) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string path = std::string(dir) + "/ballast-fuzz-" + std::to_string(getpid()) + ext;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace ballast::fuzz
