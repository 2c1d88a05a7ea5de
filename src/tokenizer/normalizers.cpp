// Normalizers: NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents, Replace, Prepend,
// BertNormalizer, ByteLevel, Precompiled (SentencePiece charsmap) and Sequence.
#include <utf8proc.h>

#include <cstdlib>
#include <cstring>

#include "tokenizer/components.h"
#include "tokenizer/precompiled.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace ballast::tokenizer {
namespace {

template <class F>
void for_each_cp(std::string_view s, F&& f) {
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    int n = utf8_decode(s, i, &cp);
    f(cp, s.substr(i, n));
    i += n;
  }
}

bool is_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void normalize(std::string& s) const override {
    if (s.empty() || is_ascii(s)) return;
    utf8proc_uint8_t* out = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), (utf8proc_ssize_t)s.size(), &out,
                          utf8proc_option_t(options_ | UTF8PROC_STABLE));
    if (n >= 0 && out) s.assign(reinterpret_cast<char*>(out), (size_t)n);
    std::free(out);
  }

 private:
  int options_;
};

void lowercase_into(std::string_view s, std::string& out) {
  out.reserve(s.size());
  for_each_cp(s, [&](char32_t cp, std::string_view raw) {
    if (cp < 0x80) out.push_back(char((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp));
    else if (cp == 0x130) out += "i\xCC\x87";  // İ lowercases to two code points
    else utf8_append(out, to_lower(cp));
  });
}

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    lowercase_into(s, out);
    s.swap(out);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        char32_t cp;
        int n = utf8_decode(s, b, &cp);
        if (!is_whitespace(cp)) break;
        b += n;
      }
    }
    if (right_) {
      while (e > b) {
        size_t k = e - 1;
        while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80) --k;
        char32_t cp;
        utf8_decode(s, k, &cp);
        if (!is_whitespace(cp)) break;
        e = k;
      }
    }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

void strip_marks(std::string& s) {
  std::string out;
  out.reserve(s.size());
  for_each_cp(s, [&](char32_t cp, std::string_view raw) {
    if (!is_mark(cp)) out.append(raw);
  });
  s.swap(out);
}

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& s) const override { strip_marks(s); }
};

class Replace : public Normalizer {
 public:
  Replace(std::string literal, std::shared_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  void normalize(std::string& s) const override {
    if (!re_) {
      if (literal_.empty() || s.find(literal_) == std::string::npos) return;
      std::string out;
      out.reserve(s.size() + 16);
      size_t pos = 0;
      while (true) {
        size_t k = s.find(literal_, pos);
        if (k == std::string::npos) break;
        out.append(s, pos, k - pos);
        out += content_;
        pos = k + literal_.size();
      }
      out.append(s, pos, std::string::npos);
      s.swap(out);
      return;
    }
    std::vector<std::pair<size_t, size_t>> m;
    re_->find_all(s, m);
    if (m.empty()) return;
    std::string out;
    size_t pos = 0;
    for (auto [b, e] : m) {
      out.append(s, pos, b - pos);
      out += content_;
      pos = e;
    }
    out.append(s, pos, std::string::npos);
    s.swap(out);
  }

 private:
  std::string literal_;
  std::shared_ptr<Regex> re_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prefix_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean, bool chinese, bool strip, bool lower)
      : clean_(clean), chinese_(chinese), strip_(strip), lower_(lower) {}
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for_each_cp(s, [&](char32_t cp, std::string_view raw) {
      if (clean_) {
        if (cp == 0 || cp == 0xFFFD) return;
        bool ws = cp == '\t' || cp == '\n' || cp == '\r' || is_whitespace(cp);
        if (ws) { out.push_back(' '); return; }
        auto k = utf8proc_category((utf8proc_int32_t)cp);
        if (k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CN ||
            k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS)
          return;
      }
      if (chinese_ && is_cjk(cp)) {
        out.push_back(' ');
        out.append(raw);
        out.push_back(' ');
        return;
      }
      out.append(raw);
    });
    if (strip_) {
      UnicodeNormalizer(UTF8PROC_DECOMPOSE).normalize(out);
      strip_marks(out);
    }
    if (lower_) {
      std::string low;
      lowercase_into(out, low);
      out.swap(low);
    }
    s.swap(out);
  }

 private:
  bool clean_, chinese_, strip_, lower_;
};

class ByteLevelNormalizer : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) out += byte_to_char_utf8(c);
    s.swap(out);
  }
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(std::string& s) const override {
    for (auto& n : items_) n->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

class PrecompiledNormalizer : public Normalizer {
 public:
  explicit PrecompiledNormalizer(std::shared_ptr<PrecompiledCharsMap> map) : map_(std::move(map)) {}
  void normalize(std::string& s) const override { s = map_->normalize(s); }

 private:
  std::shared_ptr<PrecompiledCharsMap> map_;
};

}  // namespace

Result<std::shared_ptr<Regex>> pattern_regex(const json& pattern, std::string* literal, const char* where);

Result<std::shared_ptr<Regex>> pattern_regex(const json& pattern, std::string* literal, const char* where) {
  if (pattern.is_object()) {
    if (pattern.contains("String") && pattern["String"].is_string()) {
      *literal = pattern["String"].get<std::string>();
      return std::shared_ptr<Regex>();
    }
    if (pattern.contains("Regex") && pattern["Regex"].is_string())
      return Regex::compile(pattern["Regex"].get<std::string>());
  }
  if (pattern.is_string()) {
    *literal = pattern.get<std::string>();
    return std::shared_ptr<Regex>();
  }
  return error(ErrorCode::kFormatError, std::string(where) + ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
}

Result<std::unique_ptr<Normalizer>> make_normalizer(const json& j) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  if (!j.is_object()) return error(ErrorCode::kFormatError, "normalizer: expected an object");
  std::string type = json_str(j, "type");
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(UTF8PROC_COMPOSE));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(UTF8PROC_DECOMPOSE));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new Lowercase());
  if (type == "Strip")
    return std::unique_ptr<Normalizer>(new Strip(json_bool(j, "strip_left", true), json_bool(j, "strip_right", true)));
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccents());
  if (type == "Replace") {
    std::string lit;
    BALLAST_ASSIGN_OR_RETURN(auto re, pattern_regex(j.value("pattern", json()), &lit, "normalizer Replace"));
    return std::unique_ptr<Normalizer>(new Replace(lit, re, json_str(j, "content")));
  }
  if (type == "Prepend") return std::unique_ptr<Normalizer>(new Prepend(json_str(j, "prepend")));
  if (type == "BertNormalizer") {
    bool lower = json_bool(j, "lowercase", true);
    bool strip = lower;
    if (j.contains("strip_accents") && j["strip_accents"].is_boolean()) strip = j["strip_accents"].get<bool>();
    return std::unique_ptr<Normalizer>(new BertNormalizer(json_bool(j, "clean_text", true),
                                                          json_bool(j, "handle_chinese_chars", true), strip, lower));
  }
  if (type == "ByteLevel") return std::unique_ptr<Normalizer>(new ByteLevelNormalizer());
  if (type == "Precompiled") {
    std::string b64 = json_str(j, "precompiled_charsmap");
    if (b64.empty()) return std::unique_ptr<Normalizer>();
    BALLAST_ASSIGN_OR_RETURN(auto map, PrecompiledCharsMap::from_base64(b64));
    return std::unique_ptr<Normalizer>(new PrecompiledNormalizer(std::move(map)));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> items;
    auto it = j.find("normalizers");
    if (it != j.end() && it->is_array()) {
      for (auto& e : *it) {
        BALLAST_ASSIGN_OR_RETURN(auto n, make_normalizer(e));
        if (n) items.push_back(std::move(n));
      }
    }
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(items)));
  }
  return error(ErrorCode::kUnsupported, "normalizer type \"" + type + "\" is not supported");
}

std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> items) {
  return std::make_unique<SequenceNormalizer>(std::move(items));
}
std::unique_ptr<Normalizer> make_replace_normalizer(std::string pattern, std::string content) {
  return std::make_unique<Replace>(std::move(pattern), nullptr, std::move(content));
}
std::unique_ptr<Normalizer> make_prepend_normalizer(std::string prefix) { return std::make_unique<Prepend>(std::move(prefix)); }
std::unique_ptr<Normalizer> make_nfc_normalizer() { return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE); }
std::unique_ptr<Normalizer> make_precompiled_normalizer(std::shared_ptr<PrecompiledCharsMap> map) {
  return std::make_unique<PrecompiledNormalizer>(std::move(map));
}

}  // namespace ballast::tokenizer
