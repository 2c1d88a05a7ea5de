// Python str method semantics (code point indices, Unicode whitespace) over TString.
#include "chat/pystr.h"

#include <algorithm>

#include "chat/unicode.h"

namespace ballast::chat {

std::vector<int64_t> slice_indices(int64_t len, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step_opt) {
  int64_t step = step_opt.value_or(1);
  if (step == 0) fail("slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) -> int64_t {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += len;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= len) {
      x = step < 0 ? len - 1 : len;
    }
    return x;
  };
  int64_t b = clamp(start, step < 0 ? len - 1 : 0);
  int64_t e = clamp(stop, step < 0 ? -1 : len);
  std::vector<int64_t> out;
  if (step > 0)
    for (int64_t k = b; k < e; k += step) out.push_back(k);
  else
    for (int64_t k = b; k > e; k += step) out.push_back(k);
  return out;
}

TString str_slice(const TString& s, std::optional<int64_t> start, std::optional<int64_t> stop,
                  std::optional<int64_t> step) {
  std::vector<size_t> off = utf8_offsets(s.s);
  int64_t n = static_cast<int64_t>(off.size()) - 1;
  TString out;
  if (step.value_or(1) == 1) {
    auto idx = slice_indices(n, start, stop, step);
    if (!idx.empty()) out.append(s, off[idx.front()], off[idx.back() + 1]);
    return out;
  }
  for (int64_t k : slice_indices(n, start, stop, step)) out.append(s, off[k], off[k + 1]);
  return out;
}

std::optional<TString> str_index(const TString& s, int64_t index) {
  std::vector<size_t> off = utf8_offsets(s.s);
  int64_t n = static_cast<int64_t>(off.size()) - 1;
  if (index < 0) index += n;
  if (index < 0 || index >= n) return std::nullopt;
  return s.substr(off[index], off[index + 1]);
}

static bool in_chars(char32_t c, const std::optional<std::string>& chars) {
  if (!chars) return py_isspace(c);
  size_t pos = 0;
  while (pos < chars->size())
    if (utf8_next(*chars, pos) == c) return true;
  return false;
}

TString str_strip(const TString& s, const std::optional<std::string>& chars, bool left, bool right) {
  size_t b = 0, e = s.s.size();
  if (left) {
    while (b < e) {
      size_t p = b;
      if (!in_chars(utf8_next(s.s, p), chars)) break;
      b = p;
    }
  }
  if (right) {
    size_t pos = b, keep = b;
    while (pos < e) {
      char32_t c = utf8_next(s.s, pos);
      if (!in_chars(c, chars)) keep = pos;
    }
    e = keep;
  }
  return s.substr(b, e);
}

std::vector<TString> str_split(const TString& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<TString> out;
  const std::string& t = s.s;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t f = t.find(*sep, pos);
      if (f == std::string::npos) break;
      out.push_back(s.substr(pos, f));
      pos = f + sep->size();
    }
    out.push_back(s.substr(pos, t.size()));
    return out;
  }
  size_t pos = 0;
  auto skip_ws = [&]() {
    while (pos < t.size()) {
      size_t p = pos;
      if (!py_isspace(utf8_next(t, p))) break;
      pos = p;
    }
  };
  skip_ws();
  while (pos < t.size()) {
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      // Python keeps the remainder minus trailing whitespace.
      out.push_back(str_strip(s.substr(pos, t.size()), std::nullopt, false, true));
      return out;
    }
    size_t b = pos;
    while (pos < t.size()) {
      size_t p = pos;
      if (py_isspace(utf8_next(t, p))) break;
      pos = p;
    }
    out.push_back(s.substr(b, pos));
    skip_ws();
  }
  return out;
}

std::vector<TString> str_rsplit(const TString& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return str_split(s, sep, maxsplit);
  std::vector<TString> out;
  const std::string& t = s.s;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    size_t end = t.size();
    while (static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t f = t.rfind(*sep, end - sep->size());
      if (f == std::string::npos) break;
      out.push_back(s.substr(f + sep->size(), end));
      end = f;
    }
    out.push_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  // Whitespace rsplit with a limit: split from the right on code point boundaries.
  std::vector<size_t> off = utf8_offsets(t);
  std::vector<bool> ws(off.size() - 1);
  for (size_t k = 0; k + 1 < off.size(); ++k) {
    size_t p = off[k];
    ws[k] = py_isspace(utf8_next(t, p));
  }
  int64_t k = static_cast<int64_t>(ws.size()) - 1;
  while (k >= 0 && ws[k]) --k;
  while (k >= 0) {
    if (static_cast<int64_t>(out.size()) >= maxsplit) {
      out.push_back(str_strip(s.substr(0, off[k + 1]), std::nullopt, true, false));
      break;
    }
    int64_t e = k;
    while (k >= 0 && !ws[k]) --k;
    out.push_back(s.substr(off[k + 1], off[e + 1]));
    while (k >= 0 && ws[k]) --k;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<TString> str_splitlines(const TString& s, bool keepends) {
  std::vector<TString> out;
  const std::string& t = s.s;
  size_t pos = 0, line_start = 0;
  while (pos < t.size()) {
    size_t b = pos;
    char32_t c = utf8_next(t, pos);
    if (!py_islinebreak(c)) continue;
    size_t e = pos;
    if (c == '\r' && pos < t.size() && t[pos] == '\n') e = ++pos;
    out.push_back(s.substr(line_start, keepends ? e : b));
    line_start = pos;
  }
  if (line_start < t.size()) out.push_back(s.substr(line_start, t.size()));
  return out;
}

TString str_replace(const TString& s, const std::string& old, const TString& repl, int64_t count) {
  TString out;
  const std::string& t = s.s;
  if (old.empty()) {
    // Python inserts repl before every code point and at the end.
    size_t pos = 0;
    int64_t done = 0;
    while (true) {
      if (count < 0 || done < count) {
        out.append(repl);
        ++done;
      }
      if (pos >= t.size()) break;
      size_t b = pos;
      utf8_next(t, pos);
      out.append(s, b, pos);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t f = t.find(old, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f);
    out.append(repl);
    pos = f + old.size();
    ++done;
  }
  out.append(s, pos, t.size());
  return out;
}

TString str_join(const TString& sep, const std::vector<TString>& parts) {
  TString out;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k) out.append(sep);
    out.append(parts[k]);
  }
  return out;
}

static int64_t cp_index(const std::string& s, size_t byte) {
  return static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, byte)));
}

int64_t str_find(const std::string& s, const std::string& sub, std::optional<int64_t> start,
                 std::optional<int64_t> end, bool reverse) {
  std::vector<size_t> off = utf8_offsets(s);
  int64_t n = static_cast<int64_t>(off.size()) - 1;
  auto norm = [&](std::optional<int64_t> v, int64_t d) {
    if (!v) return d;
    int64_t x = *v < 0 ? *v + n : *v;
    return std::clamp<int64_t>(x, 0, n);
  };
  int64_t b = norm(start, 0), e = norm(end, n);
  if (b > e) return -1;
  std::string_view hay = std::string_view(s).substr(off[b], off[e] - off[b]);
  size_t f = reverse ? hay.rfind(sub) : hay.find(sub);
  if (f == std::string::npos) return -1;
  return cp_index(s, off[b] + f);
}

int64_t str_count(const std::string& s, const std::string& sub) {
  if (sub.empty()) return static_cast<int64_t>(utf8_length(s)) + 1;
  int64_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size())) ++n;
  return n;
}

TString str_map_case(const TString& s, const std::string& mapped) {
  TString out(mapped);
  if (mapped.size() == s.s.size())
    out.taint = s.taint;
  else if (!s.taint.empty())
    out.mark(0, mapped.size());
  return out;
}

TString str_pad(const TString& s, int64_t width, const std::string& fill, char align) {
  int64_t len = static_cast<int64_t>(utf8_length(s.s));
  if (width <= len) return s;
  int64_t total = width - len, left = 0;
  if (align == '>') left = total;
  else if (align == '^') left = total / 2 + (total & width & 1);
  TString out;
  for (int64_t k = 0; k < left; ++k) out.append(fill);
  out.append(s);
  for (int64_t k = left; k < total; ++k) out.append(fill);
  return out;
}

TString html_escape(const TString& s) {
  TString out;
  const std::string& t = s.s;
  for (size_t k = 0; k < t.size(); ++k) {
    const char* rep = nullptr;
    switch (t[k]) {
      case '&': rep = "&amp;"; break;
      case '<': rep = "&lt;"; break;
      case '>': rep = "&gt;"; break;
      case '\'': rep = "&#39;"; break;
      case '"': rep = "&#34;"; break;
      default: break;
    }
    if (!rep) {
      out.append(s, k, k + 1);
    } else {
      size_t b = out.s.size();
      out.append(rep);
      if (s.tainted_at(k)) out.mark(b, out.s.size());
    }
  }
  return out;
}

}  // namespace ballast::chat
