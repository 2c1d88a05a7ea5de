// llama.cpp-compatible SPM and WPM models (see llama_cpp.h).
#include "tokenizer/models/llama_cpp.h"

#include <utf8proc.h>

#include <cstdio>
#include <cstdlib>
#include <queue>

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

GgufVocabModel::GgufVocabModel(std::vector<std::string> tokens, std::vector<float> scores, int32_t unk_id)
    : tokens_(std::move(tokens)), scores_(std::move(scores)), unk_id_(unk_id) {
  scores_.resize(tokens_.size(), 0.0f);
  vocab_.reserve(tokens_.size());
  // First id wins for duplicated texts, as llama.cpp's token_to_id map does.
  for (size_t i = tokens_.size(); i-- > 0;) vocab_.set(tokens_[i], int32_t(i));
  for (auto& t : tokens_) max_len_ = std::max(max_len_, t.size());
}

Status LlamaSpmModel::tokenize(std::string_view text, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t prev, next;
    uint32_t off, n;
  };
  struct Bigram {
    int32_t left, right;
    float score;
    uint32_t size;
  };
  struct Cmp {
    bool operator()(const Bigram& l, const Bigram& r) const {
      return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
  };
  std::vector<Sym> syms;
  size_t off = 0;
  while (off < text.size()) {
    size_t n = std::min<size_t>(utf8_len((unsigned char)text[off]), text.size() - off);
    syms.push_back(Sym{int32_t(syms.size()) - 1, int32_t(syms.size()) + 1, uint32_t(off), uint32_t(n)});
    off += n;
  }
  if (syms.empty()) return Status();
  syms.back().next = -1;
  std::priority_queue<Bigram, std::vector<Bigram>, Cmp> q;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    std::string_view t = text.substr(syms[l].off, syms[l].n + syms[r].n);
    auto id = vocab_.get(t);
    if (!id) return;
    q.push(Bigram{l, r, scores_[*id], uint32_t(t.size())});
  };
  for (size_t i = 1; i < syms.size(); ++i) try_add(int32_t(i - 1), int32_t(i));
  while (!q.empty()) {
    Bigram b = q.top();
    q.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  char buf[8];
  for (int32_t i = 0; i != -1; i = syms[i].next) {
    std::string_view t = text.substr(syms[i].off, syms[i].n);
    if (auto id = vocab_.get(t)) {
      out.push_back(*id);
      continue;
    }
    for (unsigned char c : t) {
      std::snprintf(buf, sizeof(buf), "<0x%02X>", c);
      auto id = vocab_.get(buf);
      if (id) out.push_back(*id);
      else if (unk_id_ >= 0) out.push_back(unk_id_);
    }
  }
  return Status();
}

namespace {
bool wpm_is_chinese(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}
}  // namespace

Status LlamaWpmModel::tokenize(std::string_view text, std::vector<int32_t>& out) const {
  // NFD, then split into words on whitespace / punctuation / CJK, lowercasing.
  std::string nfd(text);
  if (!nfd.empty()) {
    utf8proc_uint8_t* p = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(nfd.data()), (utf8proc_ssize_t)nfd.size(), &p,
                          utf8proc_option_t(UTF8PROC_DECOMPOSE | UTF8PROC_STABLE));
    if (n >= 0 && p) nfd.assign(reinterpret_cast<char*>(p), size_t(n));
    std::free(p);
  }
  std::vector<std::string> words(1);
  size_t i = 0;
  while (i < nfd.size()) {
    char32_t cp;
    int n = utf8_decode(nfd, i, &cp);
    i += n;
    if (is_whitespace(cp)) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    if (cp == 0 || cp == 0xFFFD || is_control(cp) || is_mn(cp)) continue;
    std::string s = utf8_encode(to_lower(cp));
    if (is_punctuation(cp) || (cp < 0x7F && is_symbol(cp)) || wpm_is_chinese(cp)) {
      if (!words.back().empty()) words.emplace_back();
      words.back() = s;
      words.emplace_back();
    } else {
      words.back() += s;
    }
  }
  if (words.back().empty()) words.pop_back();
  for (auto& w : words) {
    if (w.empty()) continue;
    std::string w1 = "\xE2\x96\x81" + w;
    size_t n = w1.size(), start_size = out.size();
    for (size_t a = 0; a < n;) {
      bool match = false;
      for (size_t b = std::min(n, a + max_len_ + 1); b > a; --b) {
        if (auto id = vocab_.get(std::string_view(w1).substr(a, b - a))) {
          out.push_back(*id);
          match = true;
          a = b;
          break;
        }
      }
      if (!match) {
        out.resize(start_size);
        break;
      }
    }
    if (out.size() == start_size && unk_id_ >= 0) out.push_back(unk_id_);
  }
  return Status();
}

}  // namespace ballast::tokenizer
