// SentencePiece "precompiled_charsmap" normalizer: a darts-clone double-array trie over
// UTF-8 input whose values index a blob of NUL-terminated replacement strings.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ballast::tokenizer {

class PrecompiledCharsMap {
 public:
  static Result<std::shared_ptr<PrecompiledCharsMap>> from_bytes(std::string_view blob);
  static Result<std::shared_ptr<PrecompiledCharsMap>> from_base64(std::string_view b64);
  // HF semantics: per grapheme cluster (< 6 bytes) try the whole cluster, else per char.
  std::string normalize(std::string_view s) const;

 private:
  // Replacement for the first trie prefix of `chunk`, or nullptr.
  const char* transform(std::string_view chunk, size_t* len) const;
  std::vector<uint32_t> units_;
  std::string normalized_;
};

std::string base64_decode(std::string_view in);

}  // namespace ballast::tokenizer
