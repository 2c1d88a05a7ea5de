// Bearer-token check for every route but /health.
#include "server/auth.h"

#include <cctype>

namespace ballast::server {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Walk the expected key's full length whatever the input, so timing leaks at most the length.
  volatile unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff = diff | (x ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

bool authorized(const std::string& api_key, const std::string* header) {
  if (api_key.empty()) return true;
  if (!header) return false;
  std::string_view h(*header);
  constexpr std::string_view kBearer = "bearer ";
  if (h.size() < kBearer.size()) return false;
  for (size_t i = 0; i < kBearer.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(h[i])) != kBearer[i]) return false;
  h.remove_prefix(kBearer.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  return constant_time_equal(h, api_key);
}

}  // namespace ballast::server
