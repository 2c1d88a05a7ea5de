// Incremental stop-string matcher for streamed text: text that might be the start of
// a stop string is held back until it is known not to be, so a partial match never
// reaches the client; on a match, only the text before it is released.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ballast::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  struct Out {
    std::string text;      // safe to emit now
    bool matched = false;  // a stop string was found; generation should end
  };
  // Feeds newly decoded text. After a match, further pushes return nothing.
  Out push(std::string_view delta);
  // End of generation without a match: everything held back is released.
  std::string flush();

  bool matched() const { return matched_; }
  const std::string& matched_stop() const { return matched_stop_; }
  size_t held() const { return pending_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // text not yet released
  bool matched_ = false;
  std::string matched_stop_;
};

}  // namespace ballast::server
