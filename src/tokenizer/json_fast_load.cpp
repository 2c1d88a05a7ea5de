// Fast tokenizer.json file loader. model.vocab (object form) and model.merges hold
// almost all of the file (gemma3: 262k tokens, 515k merges, 33 MB); a hand-written
// scanner reads them into flat vectors and blanks them out, and nlohmann parses only the
// small remainder. Any surprise in those two values falls back to the plain DOM parse.
#include <cstring>

#include "io/gguf.h"
#include "tokenizer/legacy.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/unicode.h"

namespace ballast::tokenizer {
namespace {

class Scanner {
 public:
  Scanner(const char* b, const char* e) : p_(b), end_(e) {}
  const char* pos() const { return p_; }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    ws();
    return p_ < end_ && *p_ == c;
  }
  bool string(std::string& out) {
    ws();
    if (p_ >= end_ || *p_ != '"') return false;
    ++p_;
    out.clear();
    while (true) {
      const char* q = p_;
      while (q < end_ && *q != '"' && *q != '\\') ++q;
      if (q >= end_) return false;
      out.append(p_, q - p_);
      p_ = q + 1;
      if (*q == '"') return true;
      if (p_ >= end_) return false;
      char c = *p_++;
      switch (c) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
          }
          utf8_append(out, char32_t(cp));
          break;
        }
        default: return false;
      }
    }
  }
  bool integer(int64_t* v) {
    ws();
    bool neg = eat('-');
    if (p_ >= end_ || *p_ < '0' || *p_ > '9') return false;
    int64_t x = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') x = x * 10 + (*p_++ - '0');
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    *v = neg ? -x : x;
    return true;
  }
  // Skips any JSON value.
  bool skip() {
    ws();
    if (p_ >= end_) return false;
    char c = *p_;
    if (c == '"') {
      ++p_;
      while (p_ < end_) {
        if (*p_ == '\\') p_ += 2;
        else if (*p_ == '"') { ++p_; return true; }
        else ++p_;
      }
      return false;
    }
    if (c == '{' || c == '[') {
      int depth = 0;
      while (p_ < end_) {
        char d = *p_;
        if (d == '"') {
          if (!skip()) return false;
          continue;
        }
        ++p_;
        if (d == '{' || d == '[') ++depth;
        else if (d == '}' || d == ']') {
          if (--depth == 0) return true;
        }
      }
      return false;
    }
    while (p_ < end_ && *p_ != ',' && *p_ != '}' && *p_ != ']' && *p_ != ' ' && *p_ != '\n' && *p_ != '\r' &&
           *p_ != '\t')
      ++p_;
    return true;
  }

 private:
  bool hex4(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *p_++;
      x <<= 4;
      if (c >= '0' && c <= '9') x |= c - '0';
      else if (c >= 'a' && c <= 'f') x |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') x |= c - 'A' + 10;
      else return false;
    }
    *v = x;
    return true;
  }
  const char* p_;
  const char* end_;
};

bool scan_vocab(Scanner& s, PrebuiltVocab& pre) {
  if (!s.eat('{')) return false;
  if (s.eat('}')) return true;
  std::string key;
  do {
    int64_t id;
    if (!s.string(key) || !s.eat(':') || !s.integer(&id)) return false;
    pre.vocab.emplace_back(key, int32_t(id));
  } while (s.eat(','));
  return s.eat('}');
}

bool scan_merges(Scanner& s, PrebuiltVocab& pre) {
  if (!s.eat('[')) return false;
  if (s.eat(']')) return true;
  std::string a, b;
  do {
    if (s.peek('"')) {
      if (!s.string(a)) return false;
      size_t sp = a.find(' ');
      if (sp == std::string::npos || a.find(' ', sp + 1) != std::string::npos) return false;
      pre.merges.emplace_back(a.substr(0, sp), a.substr(sp + 1));
    } else {
      if (!s.eat('[') || !s.string(a) || !s.eat(',') || !s.string(b) || !s.eat(']')) return false;
      pre.merges.emplace_back(std::move(a), std::move(b));
    }
  } while (s.eat(','));
  return s.eat(']');
}

// Extracts model.vocab/merges; returns the text with them replaced by {} / [].
bool extract(const std::string& text, PrebuiltVocab& pre, std::string* rest, bool* has_vocab) {
  Scanner s(text.data(), text.data() + text.size());
  std::vector<std::pair<size_t, size_t>> cut;  // spans to blank
  std::vector<const char*> repl;
  std::string key;
  *has_vocab = false;
  if (!s.eat('{')) return false;
  if (s.eat('}')) return false;
  do {
    if (!s.string(key) || !s.eat(':')) return false;
    if (key == "model" && s.peek('{')) {
      s.eat('{');
      if (!s.peek('}')) {
        do {
          if (!s.string(key) || !s.eat(':')) return false;
          s.ws();
          size_t start = s.pos() - text.data();
          if (key == "vocab" && s.peek('{')) {
            if (!scan_vocab(s, pre)) return false;
            cut.emplace_back(start, s.pos() - text.data());
            repl.push_back("{}");
            *has_vocab = true;
          } else if (key == "merges" && s.peek('[')) {
            if (!scan_merges(s, pre)) return false;
            cut.emplace_back(start, s.pos() - text.data());
            repl.push_back("[]");
          } else if (!s.skip()) {
            return false;
          }
        } while (s.eat(','));
      }
      if (!s.eat('}')) return false;
    } else if (!s.skip()) {
      return false;
    }
  } while (s.eat(','));
  if (!*has_vocab) return false;
  rest->clear();
  size_t prev = 0;
  for (size_t i = 0; i < cut.size(); ++i) {
    rest->append(text, prev, cut[i].first - prev);
    *rest += repl[i];
    prev = cut[i].second;
  }
  rest->append(text, prev, std::string::npos);
  return true;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_tokenizer_json_file(const std::string& path, const json& cfg) {
  BALLAST_ASSIGN_OR_RETURN(std::string text, read_file(path));
  PrebuiltVocab pre;
  std::string rest;
  bool has_vocab = false;
  bool fast = extract(text, pre, &rest, &has_vocab);
  try {
    if (fast) {
      json tj = json::parse(rest);
      return build_from_json(tj, cfg, path, &pre);
    }
    json tj = json::parse(text);
    return build_from_json(tj, cfg, path, nullptr);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormatError, path + ": invalid JSON: " + e.what());
  }
}

}  // namespace ballast::tokenizer
