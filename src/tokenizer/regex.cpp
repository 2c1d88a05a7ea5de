// PCRE2 wrapper (see regex.h).
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {
namespace {

// Unicode White_Space, as Oniguruma's \s matches it (PCRE2's UCP \s misses U+0085).
constexpr const char* kSpaceSet = "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"
                                  "\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

constexpr const char* kWordSet = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

struct ClassFixup {
  const char* name;
  const char* extra;
};
constexpr ClassFixup kClassFixups[] = {
#include "tokenizer/unicode_fixups.inc"
};

const char* class_fixup(std::string_view name) {
  for (auto& f : kClassFixups)
    if (name == f.name) return f.extra;
  return nullptr;
}

std::string rewrite_for_pcre2(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      if (n == 's') {
        if (in_class) out += kSpaceSet;
        else out += std::string("[") + kSpaceSet + "]";
      } else if (n == 'S' && !in_class) {
        out += std::string("[^") + kSpaceSet + "]";
      } else if ((n == 'p' || (n == 'P' && !in_class)) && i + 2 < p.size() && p[i + 2] == '{' &&
                 p.find('}', i + 3) != std::string::npos) {
        // \p{X}: add code points PCRE2's older Unicode tables leave unassigned.
        size_t close = p.find('}', i + 3);
        std::string name = p.substr(i + 3, close - i - 3);
        const char* extra = class_fixup(name);
        std::string cls = "\\p{" + name + "}";
        if (!extra || !*extra) out += p.substr(i, close - i + 1);
        else if (in_class) out += cls + extra;
        else out += (n == 'P' ? "[^" : "[") + cls + extra + "]";
        i = close;
        continue;
      } else if (n == 'w') {
        // Oniguruma's \w: letters, marks, decimal digits, connector punctuation.
        if (in_class) out += kWordSet;
        else out += std::string("[") + kWordSet + "]";
      } else if (n == 'W' && !in_class) {
        out += std::string("[^") + kWordSet + "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is literal.
      if (i + 1 < p.size() && p[i + 1] == '^') { out += '^'; ++i; }
      if (i + 1 < p.size() && p[i + 1] == ']') { out += ']'; ++i; }
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

struct MatchData {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* ctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchData() {
    md = pcre2_match_data_create(4, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~MatchData() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
  }
};

MatchData& thread_match_data() {
  thread_local MatchData md;
  return md;
}

}  // namespace

Result<std::shared_ptr<Regex>> Regex::compile(const std::string& pattern) {
  std::string rewritten = rewrite_for_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return error(ErrorCode::kFormatError, "regex /" + pattern + "/ does not compile at offset " +
                                              std::to_string(off) + ": " + reinterpret_cast<char*>(buf));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::shared_ptr<Regex> r(new Regex());
  r->pattern_ = pattern;
  r->code_ = code;
  return r;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

std::string Regex::escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/#&~ \t\n\r").find(c) != std::string_view::npos) {
      if (c == ' ') { out += "\\x20"; continue; }
      if (c == '\t') { out += "\\t"; continue; }
      if (c == '\n') { out += "\\n"; continue; }
      if (c == '\r') { out += "\\r"; continue; }
      out += '\\';
    }
    out += c;
  }
  return out;
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  MatchData& m = thread_match_data();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, m.md, m.ctx);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    size_t b = ov[0], e = ov[1];
    out.emplace_back(b, e);
    if (e == b) {
      if (e >= text.size()) break;
      pos = e + utf8_len((unsigned char)text[e]);
    } else {
      pos = e;
    }
  }
}

}  // namespace ballast::tokenizer
