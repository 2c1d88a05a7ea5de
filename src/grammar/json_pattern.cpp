// JSON-schema "pattern" (an ECMAScript regex subset) -> GBNF over the JSON-escaped
// characters of a string's contents. Supported: literals, escapes (\d \w \s \D \W \S,
// escaped punctuation, \n \t), classes with ranges and negation, ., groups ((?:...)),
// alternation, ? * + {m} {m,} {m,n} (lazy suffixes accepted), ^ and $ at the ends.
// Unanchored ends allow any characters there. Quote, backslash and control characters
// are left out of classes and `.` (a JSON string would need escapes for them).
#include <cctype>

#include "grammar/json_schema.h"
#include "grammar/utf8_ranges.h"

namespace ballast::grammar {

namespace {

class PatternParser {
 public:
  explicit PatternParser(const std::string& p) : p_(p) {}

  Result<std::string> run() {
    bool start = false, end = false;
    if (!p_.empty() && p_[0] == '^') start = true, ++i_;
    std::string body;
    BALLAST_RETURN_IF_ERROR(alternation(body, true, end));
    if (i_ != p_.size()) return fail("unbalanced ')'");
    const std::string any = "json-char*";
    return (start ? "" : any + " ") + "( " + body + " )" + (end ? "" : " " + any);
  }

 private:
  Status fail(const std::string& what) const {
    return error(ErrorCode::kUnsupported, what + " at offset " + std::to_string(i_) + " of the pattern");
  }

  Status alternation(std::string& out, bool top, bool& end) {
    std::string alts;
    while (true) {
      std::string seq;
      BALLAST_RETURN_IF_ERROR(sequence(seq, top, end));
      alts += (alts.empty() ? "" : " | ") + (seq.empty() ? std::string("\"\"") : seq);
      if (i_ < p_.size() && p_[i_] == '|') {
        ++i_;
        continue;
      }
      out = alts;
      return Status();
    }
  }

  Status sequence(std::string& out, bool top, bool& end) {
    while (i_ < p_.size() && p_[i_] != '|' && p_[i_] != ')') {
      if (p_[i_] == '$') {
        if (!top || i_ + 1 != p_.size()) return fail("'$' only at the end");
        end = true;
        ++i_;
        continue;
      }
      std::string atom;
      BALLAST_RETURN_IF_ERROR(this->atom(atom));
      BALLAST_RETURN_IF_ERROR(quantifier(atom));
      out += (out.empty() ? "" : " ") + atom;
    }
    return Status();
  }

  Status quantifier(std::string& atom) {
    if (i_ >= p_.size()) return Status();
    const char c = p_[i_];
    std::string q;
    if (c == '?' || c == '*' || c == '+') q = std::string(1, c), ++i_;
    else if (c == '{') {
      size_t close = p_.find('}', i_);
      if (close == std::string::npos) return fail("unterminated '{'");
      std::string inner = p_.substr(i_ + 1, close - i_ - 1);
      for (char d : inner)
        if (!std::isdigit(static_cast<unsigned char>(d)) && d != ',') return fail("bad repetition");
      q = "{" + inner + "}";
      i_ = close + 1;
    } else return Status();
    if (i_ < p_.size() && p_[i_] == '?') ++i_;  // lazy: same language
    atom = "( " + atom + " )" + q;
    return Status();
  }

  // Classes are kept as code-point ranges, then cut of what JSON must escape.
  static std::string cls(std::vector<CodeRange> r, bool negate) {
    auto n = normalize_ranges(std::move(r), negate);
    std::vector<CodeRange> keep;
    for (auto [a, b] : n) {
      // Remove 0x00-0x1F, '"' (0x22), '\\' (0x5C).
      std::vector<CodeRange> pieces{{a, b}};
      for (auto [x, y] : std::vector<CodeRange>{{0, 0x1F}, {0x22, 0x22}, {0x5C, 0x5C}}) {
        std::vector<CodeRange> next;
        for (auto [p, q] : pieces) {
          if (q < x || p > y) next.emplace_back(p, q);
          else {
            if (p < x) next.emplace_back(p, x - 1);
            if (q > y) next.emplace_back(y + 1, q);
          }
        }
        pieces.swap(next);
      }
      keep.insert(keep.end(), pieces.begin(), pieces.end());
    }
    if (keep.empty()) return "";
    std::string out = "[";
    auto put = [&](char32_t c) {
      char buf[16];
      snprintf(buf, sizeof buf, "\\U%08X", static_cast<unsigned>(c));
      out += buf;
    };
    for (auto [a, b] : keep) {
      put(a);
      if (b != a) out += "-", put(b);
    }
    return out + "]";
  }

  static std::string literal(char32_t c) {
    if (c == '"') return R"("\\\"")";
    if (c == '\\') return R"("\\\\")";
    if (c == '\n') return R"("\\n")";
    if (c == '\t') return R"("\\t")";
    if (c == '\r') return R"("\\r")";
    return cls({{c, c}}, false);
  }

  // An escape's class ranges; false when it is a literal character.
  static bool escape_class(char e, std::vector<CodeRange>& r, bool& neg) {
    neg = std::isupper(static_cast<unsigned char>(e)) != 0;
    switch (std::tolower(static_cast<unsigned char>(e))) {
      case 'd': r = {{'0', '9'}}; return true;
      case 'w': r = {{'0', '9'}, {'A', 'Z'}, {'a', 'z'}, {'_', '_'}}; return true;
      case 's': r = {{' ', ' '}, {'\t', '\r'}}; return true;
      default: return false;
    }
  }

  Result<char32_t> code_point() {
    unsigned char c = static_cast<unsigned char>(p_[i_]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i_ + n > p_.size()) return fail("invalid UTF-8");
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(p_[i_ + k]) & 0x3F);
    i_ += n;
    return cp;
  }

  Result<char32_t> escaped_char(char e) {
    switch (e) {
      case 'n': return char32_t('\n');
      case 't': return char32_t('\t');
      case 'r': return char32_t('\r');
      case 'b': case 'B': case 'p': case 'P': case 'u': case 'x': case 'c': case 'k':
        return fail(std::string("escape '\\") + e + "' is not supported");
      default:
        if (std::isdigit(static_cast<unsigned char>(e))) return fail("backreferences are not supported");
        return char32_t(static_cast<unsigned char>(e));
    }
  }

  Status atom(std::string& out) {
    const char c = p_[i_];
    if (c == '(') {
      ++i_;
      if (p_.compare(i_, 2, "?:") == 0) i_ += 2;
      else if (i_ < p_.size() && p_[i_] == '?') return fail("lookaround groups are not supported");
      bool end = false;
      std::string inner;
      BALLAST_RETURN_IF_ERROR(alternation(inner, false, end));
      if (i_ >= p_.size() || p_[i_] != ')') return fail("missing ')'");
      ++i_;
      out = "( " + inner + " )";
      return Status();
    }
    if (c == '[') return char_class(out);
    if (c == '.') {
      ++i_;
      out = cls({{'\n', '\n'}, {'\r', '\r'}}, true);
      return Status();
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') return fail("nothing to repeat");
    if (c == '^') return fail("'^' only at the start");
    if (c == '\\') {
      if (++i_ >= p_.size()) return fail("dangling backslash");
      const char e = p_[i_++];
      std::vector<CodeRange> r;
      bool neg;
      if (escape_class(e, r, neg)) {
        out = cls(r, neg);
        return Status();
      }
      BALLAST_ASSIGN_OR_RETURN(char32_t cp, escaped_char(e));
      out = literal(cp);
      return Status();
    }
    BALLAST_ASSIGN_OR_RETURN(char32_t cp, code_point());
    out = literal(cp);
    if (out.empty()) return fail("control characters are not supported");
    return Status();
  }

  Status char_class(std::string& out) {
    ++i_;
    bool neg = false;
    if (i_ < p_.size() && p_[i_] == '^') neg = true, ++i_;
    std::vector<CodeRange> r;
    bool first = true;
    while (true) {
      if (i_ >= p_.size()) return fail("unterminated '['");
      if (p_[i_] == ']' && !first) { ++i_; break; }
      first = false;
      char32_t a;
      if (p_[i_] == '\\') {
        if (++i_ >= p_.size()) return fail("dangling backslash");
        const char e = p_[i_++];
        std::vector<CodeRange> er;
        bool eneg;
        if (escape_class(e, er, eneg)) {
          if (eneg) er = normalize_ranges(er, true);
          r.insert(r.end(), er.begin(), er.end());
          continue;
        }
        BALLAST_ASSIGN_OR_RETURN(a, escaped_char(e));
      } else {
        BALLAST_ASSIGN_OR_RETURN(a, code_point());
      }
      char32_t b = a;
      if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        ++i_;
        if (p_[i_] == '\\') {
          if (++i_ >= p_.size()) return fail("dangling backslash");
          BALLAST_ASSIGN_OR_RETURN(b, escaped_char(p_[i_++]));
        } else {
          BALLAST_ASSIGN_OR_RETURN(b, code_point());
        }
        if (b < a) return fail("class range out of order");
      }
      r.emplace_back(a, b);
    }
    out = cls(r, neg);
    if (out.empty()) return fail("a class that matches no JSON string character");
    return Status();
  }

  const std::string& p_;
  size_t i_ = 0;
};

}  // namespace

Result<std::string> pattern_to_gbnf(const std::string& pattern) { return PatternParser(pattern).run(); }

}  // namespace ballast::grammar
