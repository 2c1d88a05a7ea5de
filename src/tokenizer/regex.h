// PCRE2 (JIT) wrapper for the regex-based pre-tokenizers, normalizers and decoders.
// Patterns are written for Oniguruma (what HF tokenizers uses); compile() rewrites the
// few constructs whose meaning differs in PCRE2 (\s covers Unicode White_Space there).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ballast::tokenizer {

class Regex {
 public:
  static Result<std::shared_ptr<Regex>> compile(const std::string& pattern);
  // Escapes a literal string into a pattern that matches it exactly.
  static std::string escape(std::string_view literal);
  ~Regex();
  // All non-overlapping matches, left to right, as (begin, end) byte offsets.
  // Empty matches are reported and the scan advances one character past them.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code*
};

}  // namespace ballast::tokenizer
