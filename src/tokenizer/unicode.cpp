// UTF-8 and Unicode helpers (see unicode.h).
#include "tokenizer/unicode.h"

#include <array>
#include <utf8proc.h>

namespace ballast::tokenizer {

int utf8_decode(std::string_view s, size_t i, char32_t* cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  size_t n = s.size() - i;
  unsigned char c = p[0];
  if (c < 0x80) { *cp = c; return 1; }
  int len;
  char32_t v;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3; v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4; v = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else { *cp = 0xFFFD; return 1; }
  for (int k = 1; k < len; ++k) {
    if ((size_t)k >= n) { *cp = 0xFFFD; return k; }
    unsigned char b = p[k];
    unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) { *cp = 0xFFFD; return k; }
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  return len;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) { out.push_back(char(cp)); }
  else if (cp < 0x800) { out.push_back(char(0xC0 | (cp >> 6))); out.push_back(char(0x80 | (cp & 0x3F))); }
  else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12))); out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18))); out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F))); out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(char32_t cp) { std::string s; utf8_append(s, cp); return s; }

bool utf8_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    if (c < 0x80) { ++i; continue; }
    char32_t cp;
    int n = utf8_decode(s, i, &cp);
    if (cp == 0xFFFD && !(n == 3 && (unsigned char)s[i] == 0xEF && (unsigned char)s[i + 1] == 0xBF &&
                          (unsigned char)s[i + 2] == 0xBD))
      return false;
    i += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    int n = utf8_decode(s, i, &cp);
    if (cp == 0xFFFD) out += "\xEF\xBF\xBD";
    else out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = s[n - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    if (c < 0xC2 || c > 0xF4) return 0;
    size_t need = utf8_len(c);
    if (need <= back) return 0;
    // Check the partial sequence is a valid prefix.
    char32_t cp;
    int got = utf8_decode(s, n - back, &cp);
    return (size_t)got == back ? back : 0;
  }
  return 0;
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000: return true;
    default: return c >= 0x2000 && c <= 0x200A;
  }
}

static inline utf8proc_category_t cat(char32_t c) { return utf8proc_category((utf8proc_int32_t)c); }

bool is_letter(char32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
bool is_number(char32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}
bool is_alphanumeric(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  return is_letter(c) || is_number(c);
}
bool is_control(char32_t c) { return cat(c) == UTF8PROC_CATEGORY_CC; }
bool is_punctuation(char32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}
bool is_symbol(char32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_SM && k <= UTF8PROC_CATEGORY_SO;
}
bool is_mark(char32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME;
}
bool is_mn(char32_t c) { return cat(c) == UTF8PROC_CATEGORY_MN; }
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}
char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return (char32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

namespace {
struct ByteTables {
  std::array<std::string, 256> to_char;
  std::array<int16_t, 0x200> from_char;  // all alphabet code points are < 0x200
  ByteTables() {
    from_char.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t cp = direct ? char32_t(b) : char32_t(256 + n++);
      to_char[b] = utf8_encode(cp);
      from_char[cp] = int16_t(b);
    }
  }
};
const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}
}  // namespace

const std::string& byte_to_char_utf8(uint8_t b) { return byte_tables().to_char[b]; }
int char_to_byte(char32_t cp) { return cp < 0x200 ? byte_tables().from_char[cp] : -1; }

}  // namespace ballast::tokenizer
