// jinja2-compatible lexer. The rules mirror jinja2/lexer.py (3.1): the data before a tag
// is stripped per the tag's sign and lstrip_blocks, block/comment ends swallow one newline
// under trim_blocks, and tag ends are recognised only while brackets are balanced.
#include "chat/lexer.h"

#include <cstring>

#include "chat/unicode.h"
#include "chat/value.h"

namespace ballast::chat {
namespace {

// End of s with trailing Unicode whitespace removed (Python str.rstrip()).
size_t rstrip_end(const std::string& s, size_t begin, size_t end) {
  size_t pos = begin, keep = begin;
  while (pos < end) {
    char32_t c = utf8_next(s, pos);
    if (!py_isspace(c)) keep = pos;
  }
  return keep;
}

// Length of the run of Unicode whitespace at s[pos].
size_t ws_run(const std::string& s, size_t pos) {
  size_t p = pos;
  while (p < s.size()) {
    size_t q = p;
    if (!py_isspace(utf8_next(s, q))) break;
    p = q;
  }
  return p - pos;
}

bool is_name_start(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool is_name_char(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding of a string literal body.
std::string unescape(const std::string& body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char n = body[++i];
    switch (n) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x': case 'u': case 'U': {
        int digits = n == 'x' ? 2 : n == 'u' ? 4 : 8;
        char32_t cp = 0;
        for (int k = 0; k < digits; ++k) {
          if (i + 1 + k >= body.size() || hexval(body[i + 1 + k]) < 0)
            fail("line " + std::to_string(line) + ": truncated \\" + std::string(1, n) +
                 " escape in string literal");
          cp = cp * 16 + hexval(body[i + 1 + k]);
        }
        if (cp > 0x10FFFF) fail("line " + std::to_string(line) + ": illegal Unicode character");
        i += digits;
        utf8_append(out, cp);
        break;
      }
      default:
        if (n >= '0' && n <= '7') {
          int v = n - '0', k = 0;
          while (k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7') {
            v = v * 8 + (body[++i] - '0');
            ++k;
          }
          utf8_append(out, static_cast<char32_t>(v));
        } else if (n == 'N') {
          fail("line " + std::to_string(line) + ": \\N{...} escapes are not supported");
        } else {
          out += '\\';
          out += n;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string src, const LexOptions& o) : s_(std::move(src)), o_(o) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < s_.size()) {
      size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        push_data(pos, s_.size());
        break;
      }
      char kind = s_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < s_.size() ? s_[tag + 2] : 0;
      if (sign != '-' && sign != '+') sign = 0;
      size_t text_end = strip_text(pos, tag, sign, kind, line_starting);
      push_data(pos, text_end);
      size_t after = tag + 2 + (sign ? 1 : 0);
      size_t raw_end;
      if (kind == '%' && match_raw_begin(after, &raw_end)) {
        pos = lex_raw(raw_end);
      } else if (kind == '#') {
        pos = lex_comment(after);
      } else {
        pos = lex_tag(after, kind == '{');
      }
      line_starting = pos > 0 && s_[pos - 1] == '\n';
    }
    toks_.push_back({Tok::kEof, "", 0, 0, line_});
    return std::move(toks_);
  }

 private:
  std::string s_;
  LexOptions o_;
  std::vector<Token> toks_;
  int line_ = 1;

  [[noreturn]] void error(const std::string& msg) {
    fail("template syntax error (line " + std::to_string(line_) + "): " + msg);
  }

  size_t find_tag(size_t pos) const {
    while (true) {
      size_t p = s_.find('{', pos);
      if (p == std::string::npos || p + 1 >= s_.size()) return std::string::npos;
      char c = s_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      pos = p + 1;
    }
  }

  void count_lines(size_t b, size_t e) {
    for (size_t k = b; k < e; ++k) line_ += s_[k] == '\n';
  }

  void push_data(size_t b, size_t e) {
    if (e > b) toks_.push_back({Tok::kData, s_.substr(b, e - b), 0, 0, line_});
  }

  // Returns the end of the data text [b, tag) after whitespace control.
  size_t strip_text(size_t b, size_t tag, char sign, char kind, bool line_starting) {
    size_t end = tag;
    if (sign == '-') {
      end = rstrip_end(s_, b, tag);
    } else if (sign != '+' && o_.lstrip_blocks && kind != '{') {
      size_t nl = s_.rfind('\n', tag == 0 ? 0 : tag - 1);
      size_t l_pos = (nl == std::string::npos || nl < b) ? b : nl + 1;
      if ((l_pos > b || line_starting) && l_pos < tag && ws_run(s_, l_pos) == tag - l_pos)
        end = l_pos;
    }
    count_lines(b, tag);
    return end;
  }

  bool match_word(size_t& p, const char* word) const {
    size_t n = std::strlen(word);
    if (s_.compare(p, n, word) != 0) return false;
    if (p + n < s_.size() && is_name_char(s_[p + n])) return false;
    p += n;
    return true;
  }

  // `{% raw %}` (also `{%- raw -%}`); on success *end is just past the tag.
  bool match_raw_begin(size_t p, size_t* end) {
    p += ws_run(s_, p);
    if (!match_word(p, "raw")) return false;
    p += ws_run(s_, p);
    if (s_.compare(p, 3, "-%}") == 0) {
      p += 3;
      p += ws_run(s_, p);
    } else if (s_.compare(p, 2, "%}") == 0) {
      p += 2;
    } else {
      return false;
    }
    *end = p;
    return true;
  }

  size_t lex_raw(size_t pos) {
    size_t search = pos;
    while (true) {
      size_t tag = s_.find("{%", search);
      if (tag == std::string::npos) error("missing end of raw directive");
      size_t p = tag + 2;
      char sign = (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) ? s_[p] : 0;
      if (sign) ++p;
      p += ws_run(s_, p);
      if (!match_word(p, "endraw")) {
        search = tag + 1;
        continue;
      }
      p += ws_run(s_, p);
      size_t end;
      if (!match_block_end(p, &end)) {
        search = tag + 1;
        continue;
      }
      bool line_starting = pos > 0 && s_[pos - 1] == '\n';
      size_t text_end = strip_text(pos, tag, sign, '%', line_starting);
      push_data(pos, text_end);
      count_lines(tag, end);
      return end;
    }
  }

  // Block end: `+%}`, `-%}` + whitespace, or `%}` + one newline under trim_blocks.
  bool match_block_end(size_t p, size_t* end) const {
    if (s_.compare(p, 3, "+%}") == 0) {
      *end = p + 3;
    } else if (s_.compare(p, 3, "-%}") == 0) {
      *end = p + 3 + ws_run(s_, p + 3);
    } else if (s_.compare(p, 2, "%}") == 0) {
      *end = p + 2;
      if (o_.trim_blocks && *end < s_.size() && s_[*end] == '\n') ++*end;
    } else {
      return false;
    }
    return true;
  }

  size_t lex_comment(size_t pos) {
    for (size_t p = pos; p + 1 < s_.size(); ++p) {
      size_t end = 0;
      if (s_.compare(p, 3, "+#}") == 0) {
        end = p + 3;
      } else if (s_.compare(p, 3, "-#}") == 0) {
        end = p + 3 + ws_run(s_, p + 3);
      } else if (s_.compare(p, 2, "#}") == 0) {
        end = p + 2;
        if (o_.trim_blocks && end < s_.size() && s_[end] == '\n') ++end;
      } else {
        continue;
      }
      count_lines(pos, end);
      return end;
    }
    error("missing end of comment tag");
  }

  size_t lex_tag(size_t pos, bool variable) {
    toks_.push_back({variable ? Tok::kVarBegin : Tok::kBlockBegin, "", 0, 0, line_});
    std::vector<char> balance;
    size_t p = pos;
    while (true) {
      if (p >= s_.size()) error(variable ? "unexpected end of template, expected '}}'"
                                         : "unexpected end of template, expected '%}'");
      if (balance.empty()) {
        size_t end = 0;
        bool matched = false;
        if (variable) {
          if (s_.compare(p, 3, "-}}") == 0) {
            end = p + 3 + ws_run(s_, p + 3);
            matched = true;
          } else if (s_.compare(p, 2, "}}") == 0) {
            end = p + 2;
            matched = true;
          }
        } else {
          matched = match_block_end(p, &end);
        }
        if (matched) {
          toks_.push_back({variable ? Tok::kVarEnd : Tok::kBlockEnd, "", 0, 0, line_});
          count_lines(p, end);
          return end;
        }
      }
      size_t ws = ws_run(s_, p);
      if (ws) {
        count_lines(p, p + ws);
        p += ws;
        continue;
      }
      p = lex_token(p, balance);
    }
  }

  size_t lex_number(size_t p) {
    // Collects digits/underscores; float if a fraction or exponent follows.
    auto digits = [&](size_t q) {
      size_t start = q;
      while (q < s_.size() && (std::isdigit((unsigned char)s_[q]) ||
                               (s_[q] == '_' && q > start && q + 1 < s_.size() &&
                                std::isdigit((unsigned char)s_[q + 1]))))
        ++q;
      return q;
    };
    size_t q = digits(p);
    bool is_float = false;
    if (q + 1 < s_.size() && s_[q] == '.' && std::isdigit((unsigned char)s_[q + 1])) {
      q = digits(q + 1);
      is_float = true;
    }
    if (q < s_.size() && (s_[q] == 'e' || s_[q] == 'E')) {
      size_t r = q + 1;
      if (r < s_.size() && (s_[r] == '+' || s_[r] == '-')) ++r;
      if (r < s_.size() && std::isdigit((unsigned char)s_[r])) {
        q = digits(r);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = p; k < q; ++k)
      if (s_[k] != '_') text += s_[k];
    Token t{is_float ? Tok::kFloat : Tok::kInt, text, 0, 0, line_};
    if (is_float) {
      t.fval = std::strtod(text.c_str(), nullptr);
    } else {
      if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos)
        error("invalid integer literal '" + text + "'");
      errno = 0;
      t.ival = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) error("integer literal too large");
    }
    toks_.push_back(t);
    return q;
  }

  size_t lex_token(size_t p, std::vector<char>& balance) {
    unsigned char c = s_[p];
    if (std::isdigit(c)) {
      if (c == '0' && p + 1 < s_.size() && std::strchr("xXoObB", s_[p + 1])) {
        int base = std::strchr("xX", s_[p + 1]) ? 16 : std::strchr("oO", s_[p + 1]) ? 8 : 2;
        size_t q = p + 2;
        std::string digits;
        while (q < s_.size() && (hexval(s_[q]) >= 0 || s_[q] == '_')) {
          if (s_[q] != '_') digits += s_[q];
          ++q;
        }
        errno = 0;
        char* endp = nullptr;
        long long v = std::strtoll(digits.c_str(), &endp, base);
        if (digits.empty() || *endp || errno == ERANGE) error("invalid integer literal");
        toks_.push_back({Tok::kInt, s_.substr(p, q - p), v, 0, line_});
        return q;
      }
      return lex_number(p);
    }
    if (is_name_start(c)) {
      size_t q = p;
      while (q < s_.size() && is_name_char(s_[q])) ++q;
      toks_.push_back({Tok::kName, s_.substr(p, q - p), 0, 0, line_});
      return q;
    }
    if (c == '\'' || c == '"') {
      size_t q = p + 1;
      while (q < s_.size() && s_[q] != static_cast<char>(c)) q += s_[q] == '\\' ? 2 : 1;
      if (q >= s_.size()) error("unexpected end of string literal");
      std::string body = s_.substr(p + 1, q - p - 1);
      toks_.push_back({Tok::kString, unescape(body, line_), 0, 0, line_});
      count_lines(p, q);
      return q + 1;
    }
    static const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo)
      if (s_.compare(p, 2, op) == 0) {
        toks_.push_back({Tok::kOp, op, 0, 0, line_});
        return p + 2;
      }
    if (std::strchr("+-/*%~[](){}><=.:|,;", c) && c != 0) {
      if (c == '(' || c == '[' || c == '{') {
        balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      } else if (c == ')' || c == ']' || c == '}') {
        if (balance.empty()) error(std::string("unexpected '") + static_cast<char>(c) + "'");
        if (balance.back() != static_cast<char>(c))
          error(std::string("unexpected '") + static_cast<char>(c) + "', expected '" +
                balance.back() + "'");
        balance.pop_back();
      }
      toks_.push_back({Tok::kOp, std::string(1, c), 0, 0, line_});
      return p + 1;
    }
    error(std::string("unexpected char '") + static_cast<char>(c) + "'");
  }
};

std::string normalize_newlines(const std::string& src, bool keep_trailing_newline) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> tokenize(const std::string& source, const LexOptions& opts) {
  Lexer lx(normalize_newlines(source, opts.keep_trailing_newline), opts);
  return lx.run();
}

}  // namespace ballast::chat
