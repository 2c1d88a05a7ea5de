// Stop-string matching across arbitrary chunk boundaries (multi-token stops included).
#include "server/stop_strings.h"

#include <algorithm>

namespace ballast::server {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

StopMatcher::Out StopMatcher::push(std::string_view delta) {
  Out out;
  if (matched_) return out;
  pending_.append(delta);
  if (stops_.empty()) {
    out.text.swap(pending_);
    return out;
  }
  // Earliest complete match wins (ties: the longest stop, as it starts at the same place).
  size_t best = std::string::npos, best_len = 0;
  for (const auto& s : stops_) {
    size_t p = pending_.find(s);
    if (p != std::string::npos && (p < best || (p == best && s.size() > best_len))) best = p, best_len = s.size();
  }
  if (best != std::string::npos) {
    matched_ = true;
    matched_stop_ = pending_.substr(best, best_len);
    out.text = pending_.substr(0, best);
    out.matched = true;
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    size_t max_k = std::min(s.size() - 1, pending_.size());
    for (size_t k = max_k; k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  }
  out.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string s;
  if (!matched_) s.swap(pending_);
  return s;
}

}  // namespace ballast::server
