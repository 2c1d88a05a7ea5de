// UTF-8 range splitting: a code-point range is cut where the encoded length changes and
// where continuation bytes stop spanning their full 0x80-0xBF range, so every piece is a
// plain product of byte ranges.
#include "grammar/utf8_ranges.h"

#include <algorithm>

namespace ballast::grammar {

std::vector<CodeRange> normalize_ranges(std::vector<CodeRange> r, bool negate) {
  std::sort(r.begin(), r.end());
  std::vector<CodeRange> m;
  for (auto [a, b] : r) {
    if (a > b) continue;
    if (!m.empty() && a <= m.back().second + 1) m.back().second = std::max(m.back().second, b);
    else m.emplace_back(a, b);
  }
  if (negate) {
    std::vector<CodeRange> c;
    char32_t next = 0;
    for (auto [a, b] : m) {
      if (a > next) c.emplace_back(next, a - 1);
      next = b + 1;
    }
    if (next <= 0x10FFFF) c.emplace_back(next, 0x10FFFF);
    m.swap(c);
  }
  // Surrogates have no UTF-8 encoding.
  std::vector<CodeRange> out;
  for (auto [a, b] : m) {
    if (b < 0xD800 || a > 0xDFFF) out.emplace_back(a, b);
    else {
      if (a < 0xD800) out.emplace_back(a, 0xD7FF);
      if (b > 0xDFFF) out.emplace_back(0xE000, b);
    }
  }
  return out;
}

namespace {

int enc_len(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

void encode(char32_t c, uint8_t* out) {
  switch (enc_len(c)) {
    case 1: out[0] = uint8_t(c); break;
    case 2: out[0] = uint8_t(0xC0 | (c >> 6)); out[1] = uint8_t(0x80 | (c & 0x3F)); break;
    case 3:
      out[0] = uint8_t(0xE0 | (c >> 12)); out[1] = uint8_t(0x80 | ((c >> 6) & 0x3F)); out[2] = uint8_t(0x80 | (c & 0x3F));
      break;
    default:
      out[0] = uint8_t(0xF0 | (c >> 18)); out[1] = uint8_t(0x80 | ((c >> 12) & 0x3F));
      out[2] = uint8_t(0x80 | ((c >> 6) & 0x3F)); out[3] = uint8_t(0x80 | (c & 0x3F));
  }
}

void split(char32_t a, char32_t b, std::vector<ByteRangeSeq>& out) {
  // Same encoded length.
  for (char32_t edge : {char32_t(0x7F), char32_t(0x7FF), char32_t(0xFFFF)})
    if (a <= edge && b > edge) {
      split(a, edge, out);
      split(edge + 1, b, out);
      return;
    }
  const int n = enc_len(a);
  if (n == 1) {
    out.push_back({{uint8_t(a), uint8_t(b)}});
    return;
  }
  // Cut so that all trailing continuation bytes span their full range, except one prefix.
  for (int i = 1; i < n; ++i) {
    const char32_t m = (char32_t(1) << (6 * i)) - 1;
    if ((a & ~m) != (b & ~m)) {
      if ((a & m) != 0) {
        split(a, a | m, out);
        split((a | m) + 1, b, out);
        return;
      }
      if ((b & m) != m) {
        split(a, (b & ~m) - 1, out);
        split(b & ~m, b, out);
        return;
      }
    }
  }
  uint8_t ea[4], eb[4];
  encode(a, ea);
  encode(b, eb);
  ByteRangeSeq s;
  for (int i = 0; i < n; ++i) s.emplace_back(ea[i], eb[i]);
  out.push_back(std::move(s));
}

}  // namespace

std::vector<ByteRangeSeq> utf8_sequences(const std::vector<CodeRange>& ranges) {
  std::vector<ByteRangeSeq> out;
  for (auto [a, b] : ranges) split(a, b, out);
  return out;
}

}  // namespace ballast::grammar
