// Added-token matcher (see added_tokens.h).
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {
namespace {

// regex \w as Rust's regex crate sees it (alphanumeric, marks, connector punctuation).
bool is_word_char(char32_t c) { return c == '_' || is_alphanumeric(c) || is_mark(c); }

char32_t last_char(std::string_view s) {
  if (s.empty()) return 0;
  size_t k = s.size() - 1;
  while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) --k;
  char32_t cp;
  utf8_decode(s, k, &cp);
  return cp;
}

}  // namespace

void AddedTokenMatcher::build(const std::vector<std::pair<std::string, AddedToken>>& tokens, Mode mode) {
  mode_ = mode;
  entries_.clear();
  trie_ = MergeMap();
  n_nodes_ = 1;
  std::fill(std::begin(first_byte_), std::end(first_byte_), false);
  for (auto& [content, tok] : tokens) {
    if (content.empty()) continue;
    int32_t idx = int32_t(entries_.size());
    entries_.push_back(Entry{content, tok});
    first_byte_[(unsigned char)content[0]] = true;
    int32_t node = 0;
    for (size_t k = 0; k < content.size(); ++k) {
      unsigned char b = content[k];
      const MergeInfo* e = trie_.get(node, b);
      int32_t child = e ? e->rank : n_nodes_++;
      int32_t val = e ? e->new_id : -1;
      if (k + 1 == content.size()) val = idx;  // later duplicates win, as in HF's map
      trie_.set(node, b, MergeInfo{child, val});
      node = child;
    }
  }
}

int AddedTokenMatcher::longest_at(std::string_view text, size_t pos) const {
  int best = -1;
  int32_t node = 0;
  for (size_t k = pos; k < text.size(); ++k) {
    const MergeInfo* e = trie_.get(node, (unsigned char)text[k]);
    if (!e) break;
    node = e->rank;
    if (e->new_id >= 0) best = e->new_id;
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, bool parse_special, std::vector<Segment>& out) const {
  out.clear();
  if (entries_.empty()) {
    out.push_back(Segment{0, text.size(), -1});
    return;
  }
  if (mode_ == Mode::kHf) split_hf(text, parse_special, out);
  else split_llama(text, parse_special, out);
}

void AddedTokenMatcher::split_hf(std::string_view text, bool parse_special, std::vector<Segment>& out) const {
  size_t start_offset = 0;  // end of the previous emitted token
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[(unsigned char)text[pos]]) {
      ++pos;
      continue;
    }
    int idx = longest_at(text, pos);
    if (idx < 0) {
      ++pos;
      continue;
    }
    const Entry& e = entries_[idx];
    size_t start = pos, stop = pos + e.content.size();
    pos = stop;  // the automaton resumes after this match, even when we skip it
    if (!parse_special && e.tok.special) continue;
    if (e.tok.single_word) {
      bool start_ok = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      bool stop_ok = true;
      if (stop < text.size()) {
        char32_t cp;
        utf8_decode(text, stop, &cp);
        stop_ok = !is_word_char(cp);
      }
      if (!start_ok || !stop_ok) continue;
    }
    if (e.tok.lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t k = ns - 1;
        while (k > 0 && ((unsigned char)text[k] & 0xC0) == 0x80) --k;
        char32_t cp;
        utf8_decode(text, k, &cp);
        if (!is_whitespace(cp)) break;
        ns = k;
      }
      start = std::max(ns, start_offset);
    }
    if (e.tok.rstrip) {
      while (stop < text.size()) {
        char32_t cp;
        int n = utf8_decode(text, stop, &cp);
        if (!is_whitespace(cp)) break;
        stop += n;
      }
      pos = stop;
    }
    if (start_offset < start) out.push_back(Segment{start_offset, start, -1});
    out.push_back(Segment{start, stop, e.tok.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back(Segment{start_offset, text.size(), -1});
}

void AddedTokenMatcher::split_llama(std::string_view text, bool parse_special, std::vector<Segment>& out) const {
  // llama.cpp: for each token, longest first, split every plain fragment on it.
  // Only tokens that occur somewhere in the text matter; find them with the trie.
  std::vector<char> seen(entries_.size(), 0);
  std::vector<int> order;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    if (!first_byte_[(unsigned char)text[pos]]) continue;
    int32_t node = 0;
    for (size_t k = pos; k < text.size(); ++k) {
      const MergeInfo* e = trie_.get(node, (unsigned char)text[k]);
      if (!e) break;
      node = e->rank;
      int i = e->new_id;
      if (i >= 0 && !seen[i]) {
        seen[i] = 1;
        if (parse_special || !entries_[i].tok.special) order.push_back(i);
      }
    }
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return entries_[a].content.size() > entries_[b].content.size(); });
  std::vector<Segment> frags{Segment{0, text.size(), -1}};
  if (text.empty()) frags.clear();
  for (int idx : order) {
    const std::string& c = entries_[idx].content;
    std::vector<Segment> next;
    for (auto& f : frags) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.begin;
      while (pos < f.end) {
        size_t k = text.substr(0, f.end).find(c, pos);
        if (k == std::string_view::npos) break;
        if (k > pos) next.push_back(Segment{pos, k, -1});
        next.push_back(Segment{k, k + c.size(), entries_[idx].tok.id});
        pos = k + c.size();
      }
      if (pos < f.end) next.push_back(Segment{pos, f.end, -1});
    }
    frags.swap(next);
  }
  out = std::move(frags);
}

}  // namespace ballast::tokenizer
