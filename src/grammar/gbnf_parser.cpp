// GBNF text -> GbnfAst. Rules end where the next `name ::=` begins, so newlines inside
// alternatives need no special care.
#include <cctype>

#include "grammar/gbnf_ast.h"

namespace ballast::grammar {

namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Result<GbnfAst> run() {
    GbnfAst ast;
    skip_ws();
    while (i_ < s_.size()) {
      std::string name = ident();
      if (name.empty()) return fail("expected a rule name");
      skip_ws();
      if (s_.substr(i_, 3) != "::=") return fail("expected '::=' after '" + name + "'");
      i_ += 3;
      Node body;
      BALLAST_RETURN_IF_ERROR(alternatives(body));
      if (ast.rules.count(name)) return fail("rule '" + name + "' is defined twice");
      ast.order.push_back(name);
      ast.rules[name] = std::move(body);
      skip_ws();
    }
    if (ast.order.empty()) return fail("the grammar has no rules");
    return ast;
  }

 private:
  Status fail_st(const std::string& what) const {
    int line = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) line += s_[k] == '\n';
    return error(ErrorCode::kInvalidArgument, "grammar line " + std::to_string(line) + ": " + what);
  }
  Result<GbnfAst> fail(const std::string& what) const { return fail_st(what); }

  void skip_ws() {
    while (i_ < s_.size()) {
      if (std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
      else if (s_[i_] == '#') while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      else break;
    }
  }
  static bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }
  std::string ident() {
    size_t b = i_;
    while (i_ < s_.size() && name_char(s_[i_])) ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  // At an identifier followed by ::= (the next rule's head)?
  bool at_rule_head() const {
    size_t k = i_;
    while (k < s_.size() && name_char(s_[k])) ++k;
    if (k == i_) return false;
    while (k < s_.size() && (s_[k] == ' ' || s_[k] == '\t' || s_[k] == '\n' || s_[k] == '\r')) ++k;
    return s_.substr(k, 3) == "::=";
  }

  Status alternatives(Node& out) {
    out.kind = Node::Kind::kAlt;
    while (true) {
      Node seq;
      BALLAST_RETURN_IF_ERROR(sequence(seq));
      out.kids.push_back(std::move(seq));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == '|') {
        ++i_;
        continue;
      }
      return Status();
    }
  }

  Status sequence(Node& out) {
    out.kind = Node::Kind::kSeq;
    while (true) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] == '|' || s_[i_] == ')' || at_rule_head()) return Status();
      Node item;
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        item.kind = Node::Kind::kLiteral;
        while (true) {
          if (i_ >= s_.size()) return fail_st("unterminated string literal");
          if (s_[i_] == '"') { ++i_; break; }
          char32_t cp;
          BALLAST_RETURN_IF_ERROR(character(cp));
          append_utf8(item.text, cp);
        }
      } else if (c == '[') {
        ++i_;
        BALLAST_RETURN_IF_ERROR(char_class(item));
      } else if (c == '.') {
        ++i_;
        item.kind = Node::Kind::kClass;
        item.ranges = normalize_ranges({}, true);
      } else if (c == '(') {
        ++i_;
        BALLAST_RETURN_IF_ERROR(alternatives(item));
        skip_ws();
        if (i_ >= s_.size() || s_[i_] != ')') return fail_st("expected ')'");
        ++i_;
      } else if (name_char(c)) {
        item.kind = Node::Kind::kRef;
        item.text = ident();
      } else {
        return fail_st(std::string("unexpected character '") + c + "'");
      }
      BALLAST_RETURN_IF_ERROR(postfix(item));
      out.kids.push_back(std::move(item));
    }
  }

  Status postfix(Node& item) {
    while (i_ < s_.size()) {
      int mn, mx;
      const char c = s_[i_];
      if (c == '?') mn = 0, mx = 1;
      else if (c == '*') mn = 0, mx = -1;
      else if (c == '+') mn = 1, mx = -1;
      else if (c == '{') {
        ++i_;
        BALLAST_RETURN_IF_ERROR(braces(mn, mx));
        --i_;
      } else return Status();
      ++i_;
      Node r;
      r.kind = Node::Kind::kRepeat;
      r.min = mn;
      r.max = mx;
      r.kids.push_back(std::move(item));
      item = std::move(r);
    }
    return Status();
  }

  Status number(int& v) {
    skip_ws();
    size_t b = i_;
    v = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      v = v * 10 + (s_[i_++] - '0');
      if (v > 10000) return fail_st("repetition count over 10000");
    }
    return i_ > b ? Status() : fail_st("expected a number in {m,n}");
  }

  Status braces(int& mn, int& mx) {
    BALLAST_RETURN_IF_ERROR(number(mn));
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ',') {
      ++i_;
      skip_ws();
      if (i_ < s_.size() && s_[i_] == '}') mx = -1;
      else BALLAST_RETURN_IF_ERROR(number(mx));
    } else {
      mx = mn;
    }
    skip_ws();
    if (i_ >= s_.size() || s_[i_] != '}') return fail_st("expected '}'");
    ++i_;
    if (mx >= 0 && mx < mn) return fail_st("{m,n} with n < m");
    return Status();
  }

  Status char_class(Node& item) {
    item.kind = Node::Kind::kClass;
    bool neg = false;
    if (i_ < s_.size() && s_[i_] == '^') neg = true, ++i_;
    std::vector<CodeRange> r;
    while (true) {
      if (i_ >= s_.size()) return fail_st("unterminated character class");
      if (s_[i_] == ']') { ++i_; break; }
      char32_t a, b;
      BALLAST_RETURN_IF_ERROR(character(a));
      b = a;
      if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
        ++i_;
        BALLAST_RETURN_IF_ERROR(character(b));
        if (b < a) return fail_st("character range out of order");
      }
      r.emplace_back(a, b);
    }
    item.ranges = normalize_ranges(std::move(r), neg);
    return Status();
  }

  Status hex(int digits, char32_t& cp) {
    cp = 0;
    for (int k = 0; k < digits; ++k) {
      if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_]))) return fail_st("bad hex escape");
      const char h = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[i_++])));
      cp = cp * 16 + (h <= '9' ? h - '0' : h - 'a' + 10);
    }
    if (cp > 0x10FFFF) return fail_st("code point out of range");
    return Status();
  }

  // One (possibly escaped) code point of a literal or class.
  Status character(char32_t& cp) {
    unsigned char c = static_cast<unsigned char>(s_[i_]);
    if (c == '\\') {
      if (++i_ >= s_.size()) return fail_st("dangling backslash");
      const char e = s_[i_++];
      switch (e) {
        case 'n': cp = '\n'; return Status();
        case 'r': cp = '\r'; return Status();
        case 't': cp = '\t'; return Status();
        case 'x': return hex(2, cp);
        case 'u': return hex(4, cp);
        case 'U': return hex(8, cp);
        default: cp = static_cast<unsigned char>(e); return Status();
      }
    }
    // A UTF-8 sequence in the grammar text.
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i_ + n > s_.size()) return fail_st("invalid UTF-8 in the grammar");
    cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s_[i_ + k]) & 0x3F);
    i_ += n;
    return Status();
  }

  static void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) out += char(c);
    else if (c < 0x800) out += char(0xC0 | (c >> 6)), out += char(0x80 | (c & 0x3F));
    else if (c < 0x10000)
      out += char(0xE0 | (c >> 12)), out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
    else
      out += char(0xF0 | (c >> 18)), out += char(0x80 | ((c >> 12) & 0x3F)), out += char(0x80 | ((c >> 6) & 0x3F)),
          out += char(0x80 | (c & 0x3F));
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

Result<GbnfAst> parse_gbnf_ast(std::string_view text) { return Parser(text).run(); }

}  // namespace ballast::grammar
