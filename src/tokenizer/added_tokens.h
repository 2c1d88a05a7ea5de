// Added-token matcher: finds added-token literals in text, HF-style (leftmost-longest,
// single_word / lstrip / rstrip), or llama.cpp-style (longest token first, over the
// whole text). Two instances are used: tokens matched on raw text (normalized=false)
// and tokens matched after normalization.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_map.h"

namespace ballast::tokenizer {

struct Segment {
  size_t begin, end;  // byte range in the text
  int32_t id;         // added-token id, or -1 for plain text
};

class AddedTokenMatcher {
 public:
  enum class Mode { kHf, kLlamaCpp };
  // `tokens` are (content as matched, token) pairs; content may differ from
  // token.content when normalized.
  void build(const std::vector<std::pair<std::string, AddedToken>>& tokens, Mode mode);
  bool empty() const { return entries_.empty(); }
  // Splits text into plain and token segments. Special tokens are skipped when
  // !parse_special (their text stays plain).
  void split(std::string_view text, bool parse_special, std::vector<Segment>& out) const;

 private:
  struct Entry {
    std::string content;
    AddedToken tok;
  };
  // Longest entry matching at pos, or -1.
  int longest_at(std::string_view text, size_t pos) const;
  void split_hf(std::string_view text, bool parse_special, std::vector<Segment>& out) const;
  void split_llama(std::string_view text, bool parse_special, std::vector<Segment>& out) const;
  std::vector<Entry> entries_;
  MergeMap trie_;  // (node, byte) -> {child, entry index or -1}
  int32_t n_nodes_ = 1;
  bool first_byte_[256] = {};
  Mode mode_ = Mode::kHf;
};

}  // namespace ballast::tokenizer
