// Precompiled charsmap normalizer (see precompiled.h).
#include "tokenizer/precompiled.h"

#include <utf8proc.h>

#include <cstring>

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

std::string base64_decode(std::string_view in) {
  static int8_t table[256];
  static bool init = [] {
    std::memset(table, -1, sizeof(table));
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) table[(unsigned char)a[i]] = int8_t(i);
    return true;
  }();
  (void)init;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    if (table[c] < 0) continue;
    acc = (acc << 6) | uint32_t(table[c]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return out;
}

Result<std::shared_ptr<PrecompiledCharsMap>> PrecompiledCharsMap::from_bytes(std::string_view blob) {
  if (blob.size() < 4) return error(ErrorCode::kFormatError, "precompiled_charsmap: too short");
  uint32_t trie_size;
  std::memcpy(&trie_size, blob.data(), 4);
  if (trie_size % 4 != 0 || 4 + (size_t)trie_size > blob.size())
    return error(ErrorCode::kFormatError, "precompiled_charsmap: bad trie size");
  auto m = std::make_shared<PrecompiledCharsMap>();
  m->units_.resize(trie_size / 4);
  std::memcpy(m->units_.data(), blob.data() + 4, trie_size);
  m->normalized_.assign(blob.substr(4 + trie_size));
  return m;
}

Result<std::shared_ptr<PrecompiledCharsMap>> PrecompiledCharsMap::from_base64(std::string_view b64) {
  return from_bytes(base64_decode(b64));
}

const char* PrecompiledCharsMap::transform(std::string_view chunk, size_t* len) const {
  if (units_.empty()) return nullptr;
  auto offset = [](uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  auto label = [](uint32_t u) { return u & ((1u << 31) | 0xFFu); };
  auto has_leaf = [](uint32_t u) { return (u >> 8) & 1u; };
  size_t pos = 0;
  uint32_t unit = units_[0];
  pos ^= offset(unit);
  for (unsigned char c : chunk) {
    pos ^= c;
    if (pos >= units_.size()) return nullptr;
    unit = units_[pos];
    if (label(unit) != c) return nullptr;
    pos ^= offset(unit);
    if (pos >= units_.size()) return nullptr;
    if (has_leaf(unit)) {
      uint32_t value = units_[pos] & 0x7FFFFFFFu;
      if (value >= normalized_.size()) return nullptr;
      const char* p = normalized_.data() + value;
      *len = strnlen(p, normalized_.size() - value);
      return p;
    }
  }
  return nullptr;
}

std::string PrecompiledCharsMap::normalize(std::string_view s) const {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    // One extended grapheme cluster [i, j).
    char32_t cp;
    size_t j = i + utf8_decode(s, i, &cp);
    utf8proc_int32_t state = 0;
    char32_t prev = cp;
    while (j < s.size()) {
      char32_t next;
      int n = utf8_decode(s, j, &next);
      if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)next, &state)) break;
      prev = next;
      j += n;
    }
    std::string_view g = s.substr(i, j - i);
    size_t len = 0;
    const char* rep = g.size() < 6 ? transform(g, &len) : nullptr;
    if (rep) {
      out.append(rep, len);
    } else {
      size_t k = 0;
      while (k < g.size()) {
        char32_t c;
        int n = utf8_decode(g, k, &c);
        const char* r = transform(g.substr(k, n), &len);
        if (r) out.append(r, len);
        else out.append(g.substr(k, n));
        k += n;
      }
    }
    i = j;
  }
  return out;
}

}  // namespace ballast::tokenizer
