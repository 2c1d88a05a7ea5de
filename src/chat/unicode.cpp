// UTF-8 decoding and Python-compatible character classes built on utf8proc.
#include "chat/unicode.h"

#include <utf8proc.h>

namespace ballast::chat {

char32_t utf8_next(std::string_view s, size_t& pos) {
  unsigned char c = static_cast<unsigned char>(s[pos]);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || pos + len > s.size()) {
    ++pos;
    return 0xFFFD;
  }
  char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[pos + k]);
    if ((cc & 0xC0) != 0x80) {
      ++pos;
      return 0xFFFD;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  pos += len;
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> out;
  out.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  out.push_back(s.size());
  return out;
}

static utf8proc_category_t cat(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

bool py_isspace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  if (c == 0x85 || c == 0xA0 || c == 0x1680 || c == 0x2028 || c == 0x2029 || c == 0x202F ||
      c == 0x205F || c == 0x3000)
    return true;
  return c >= 0x2000 && c <= 0x200A;
}

bool py_islinebreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
         c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
}

bool py_isprintable(char32_t c) {
  if (c == ' ') return true;
  switch (cat(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

bool py_isalpha(char32_t c) {
  auto k = cat(c);
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
         k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO;
}
bool py_isdigit(char32_t c) { return cat(c) == UTF8PROC_CATEGORY_ND; }
bool py_isalnum(char32_t c) {
  auto k = cat(c);
  return py_isalpha(c) || k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL ||
         k == UTF8PROC_CATEGORY_NO;
}
bool py_iscased(char32_t c) {
  auto k = cat(c);
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}
bool py_islower_cp(char32_t c) { return cat(c) == UTF8PROC_CATEGORY_LL; }
bool py_isupper_cp(char32_t c) {
  auto k = cat(c);
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT;
}
char32_t py_toupper(char32_t c) { return utf8proc_toupper(static_cast<utf8proc_int32_t>(c)); }
char32_t py_tolower(char32_t c) { return utf8proc_tolower(static_cast<utf8proc_int32_t>(c)); }
char32_t py_totitle(char32_t c) { return utf8proc_totitle(static_cast<utf8proc_int32_t>(c)); }

// Python applies Unicode SpecialCasing (one code point -> several); utf8proc only has the
// simple 1:1 mappings, so the multi-character cases that occur in practice are listed here.
struct Special {
  char32_t cp;
  const char* upper;
  const char* title;
  const char* lower;
};
static const Special kSpecial[] = {
    {0x00DF, "SS", "Ss", nullptr},                    // ß
    {0x0130, nullptr, nullptr, "i\xCC\x87"},          // İ -> i + combining dot above
    {0x0149, "\xCA\xBCN", "\xCA\xBCN", nullptr},      // ŉ
    {0xFB00, "FF", "Ff", nullptr}, {0xFB01, "FI", "Fi", nullptr}, {0xFB02, "FL", "Fl", nullptr},
    {0xFB03, "FFI", "Ffi", nullptr}, {0xFB04, "FFL", "Ffl", nullptr},
    {0xFB05, "ST", "St", nullptr}, {0xFB06, "ST", "St", nullptr},
};

// mode: 'u' upper, 't' title, 'l' lower. Returns false if no special mapping applies.
static bool special_case(std::string& out, char32_t c, char mode) {
  for (const Special& s : kSpecial) {
    if (s.cp != c) continue;
    const char* m = mode == 'u' ? s.upper : mode == 't' ? s.title : s.lower;
    if (!m) return false;
    out += m;
    return true;
  }
  return false;
}

template <class F>
static std::string map_cps(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) utf8_append(out, f(utf8_next(s, pos)));
  return out;
}

// Like map_cps but consults SpecialCasing first; mode picks the mapping per code point.
template <class F>
static std::string map_cps_special(std::string_view s, F mode_of) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t c = utf8_next(s, pos);
    char mode = mode_of(c);
    if (mode == 0 || special_case(out, c, mode)) continue;
    utf8_append(out, mode == 'u' ? py_toupper(c) : mode == 't' ? py_totitle(c) : py_tolower(c));
  }
  return out;
}

std::string py_upper(std::string_view s) {
  return map_cps_special(s, [](char32_t) { return 'u'; });
}
std::string py_lower(std::string_view s) {
  return map_cps_special(s, [](char32_t) { return 'l'; });
}
std::string py_swapcase(std::string_view s) {
  return map_cps(s, [](char32_t c) {
    return py_isupper_cp(c) ? py_tolower(c) : py_islower_cp(c) ? py_toupper(c) : c;
  });
}

std::string py_title(std::string_view s) {
  bool prev_cased = false;
  return map_cps_special(s, [&](char32_t c) {
    char mode = prev_cased ? 'l' : 't';
    prev_cased = py_iscased(c);
    return mode;
  });
}

std::string py_capitalize(std::string_view s) {
  bool first = true;
  return map_cps_special(s, [&](char32_t) {
    char mode = first ? 't' : 'l';
    first = false;
    return mode;
  });
}

}  // namespace ballast::chat
