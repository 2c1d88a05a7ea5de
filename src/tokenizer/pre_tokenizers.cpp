// Pre-tokenizers: ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit, Digits,
// Punctuation, CharDelimiterSplit, BertPreTokenizer, UnicodeScripts and Sequence.
// Splitting follows HF's SplitDelimiterBehavior over a list of (range, is_match).
#include <utf8proc.h>

#include <functional>

#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

Result<std::shared_ptr<Regex>> pattern_regex(const json& pattern, std::string* literal, const char* where);

namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t b, e;
  bool match;
};

// Applies a delimiter behavior to (range, is_match) spans covering the piece; appends
// the resulting non-empty sub-pieces to `out`.
void apply_behavior(const Piece& piece, std::vector<Span>& spans, Behavior behavior, bool invert,
                    std::vector<Piece>& out) {
  if (invert)
    for (auto& s : spans) s.match = !s.match;
  std::vector<std::pair<size_t, size_t>> ranges;  // kept ranges
  ranges.reserve(spans.size());
  switch (behavior) {
    case Behavior::kIsolated:
      for (auto& s : spans) ranges.emplace_back(s.b, s.e);
      break;
    case Behavior::kRemoved:
      for (auto& s : spans)
        if (!s.match) ranges.emplace_back(s.b, s.e);
      break;
    case Behavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (auto& s : spans) {
        if (s.match && !prev_match && !ranges.empty()) ranges.back().second = s.e;
        else ranges.emplace_back(s.b, s.e);
        prev_match = s.match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev_match = false;
      for (size_t k = spans.size(); k-- > 0;) {
        auto& s = spans[k];
        if (s.match && !prev_match && !ranges.empty()) ranges.back().first = s.b;
        else ranges.emplace_back(s.b, s.e);
        prev_match = s.match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
    }
    case Behavior::kContiguous: {
      bool prev_match = false;
      for (auto& s : spans) {
        if (s.match == prev_match && !ranges.empty()) ranges.back().second = s.e;
        else ranges.emplace_back(s.b, s.e);
        prev_match = s.match;
      }
      break;
    }
  }
  for (auto [b, e] : ranges) {
    if (e <= b) continue;
    out.push_back(Piece{piece.text.substr(b, e - b), piece.at_start && b == 0});
  }
}

// Spans from a list of matches (sorted, non-overlapping).
void spans_from_matches(size_t len, const std::vector<std::pair<size_t, size_t>>& m, std::vector<Span>& spans) {
  spans.clear();
  if (len == 0) {
    spans.push_back({0, 0, false});
    return;
  }
  size_t prev = 0;
  for (auto [b, e] : m) {
    if (prev != b) spans.push_back({prev, b, false});
    spans.push_back({b, e, true});
    prev = e;
  }
  if (prev != len) spans.push_back({prev, len, false});
}

// Each char satisfying `pred` is its own match.
void spans_from_pred(const std::string& s, const std::function<bool(char32_t)>& pred, std::vector<Span>& spans) {
  std::vector<std::pair<size_t, size_t>> m;
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    int n = utf8_decode(s, i, &cp);
    if (pred(cp)) m.emplace_back(i, i + n);
    i += n;
  }
  spans_from_matches(s.size(), m, spans);
}

Result<Behavior> parse_behavior(const json& j, const char* where) {
  std::string b = json_str(j, "behavior", "Isolated");
  std::string lower;
  for (char c : b) lower.push_back(char(std::tolower((unsigned char)c)));
  if (lower == "removed") return Behavior::kRemoved;
  if (lower == "isolated") return Behavior::kIsolated;
  if (lower == "merged_with_previous" || lower == "mergedwithprevious") return Behavior::kMergedWithPrevious;
  if (lower == "merged_with_next" || lower == "mergedwithnext") return Behavior::kMergedWithNext;
  if (lower == "contiguous") return Behavior::kContiguous;
  return error(ErrorCode::kFormatError, std::string(where) + ": unknown behavior \"" + b + "\"");
}

class PredicateSplit : public PreTokenizer {
 public:
  PredicateSplit(std::function<bool(char32_t)> pred, Behavior b) : pred_(std::move(pred)), behavior_(b) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    std::vector<Span> spans;
    for (auto& p : pieces) {
      spans_from_pred(p.text, pred_, spans);
      apply_behavior(p, spans, behavior_, false, out);
    }
    pieces.swap(out);
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(std::string literal, std::shared_ptr<Regex> re, Behavior b, bool invert)
      : literal_(std::move(literal)), re_(std::move(re)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    std::vector<Span> spans;
    std::vector<std::pair<size_t, size_t>> m;
    for (auto& p : pieces) {
      m.clear();
      find(p.text, m);
      // Fast path: Isolated without inversion keeps every span.
      spans_from_matches(p.text.size(), m, spans);
      apply_behavior(p, spans, behavior_, invert_, out);
    }
    pieces.swap(out);
  }

 private:
  void find(const std::string& s, std::vector<std::pair<size_t, size_t>>& m) const {
    if (re_) {
      re_->find_all(s, m);
      return;
    }
    if (literal_.empty()) return;
    size_t pos = 0;
    while ((pos = s.find(literal_, pos)) != std::string::npos) {
      m.emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
  }
  std::string literal_;
  std::shared_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, std::shared_ptr<Regex> re) : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
    }
    if (re_) {
      std::vector<Piece> out;
      out.reserve(pieces.size() * 4);
      std::vector<std::pair<size_t, size_t>> m;
      std::vector<Span> spans;
      for (auto& p : pieces) {
        m.clear();
        re_->find_all(p.text, m);
        spans_from_matches(p.text.size(), m, spans);
        apply_behavior(p, spans, Behavior::kIsolated, false, out);
      }
      pieces.swap(out);
    }
    for (auto& p : pieces) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) mapped += byte_to_char_utf8(c);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::shared_ptr<Regex> re_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string rep, PrependScheme scheme, bool split) : rep_(std::move(rep)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto& p : pieces) {
      std::string s;
      s.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ') s += rep_;
        else s.push_back(c);
      }
      bool starts = s.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start)))
        s.insert(0, rep_);
      Piece np{std::move(s), p.at_start};
      if (!split_) {
        out.push_back(std::move(np));
        continue;
      }
      std::vector<std::pair<size_t, size_t>> m;
      size_t pos = 0;
      while ((pos = np.text.find(rep_, pos)) != std::string::npos) {
        m.emplace_back(pos, pos + rep_.size());
        pos += rep_.size();
      }
      std::vector<Span> spans;
      spans_from_matches(np.text.size(), m, spans);
      apply_behavior(np, spans, Behavior::kMergedWithNext, false, out);
    }
    pieces.swap(out);
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

bool bert_punct(char32_t c) {
  if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  return is_punctuation(c);
}

// UnicodeScripts: splits where the script changes (Han/Hiragana/Katakana count as one);
// spaces stay with the preceding run, as HF does.
int script_of(char32_t c) {
  if (c == ' ') return -2;  // "Any": joins its neighbours
  // A coarse script partition by block; enough for the Latin/CJK/Cyrillic/... mixes
  // the UnicodeScripts pre-tokenizer is used for.
  if (is_whitespace(c)) return -2;
  if (c < 0x80) return is_alphanumeric(c) ? 1 : (is_letter(c) ? 1 : 0);
  if (c >= 0x3040 && c <= 0x30FF) return 100;  // Hiragana/Katakana -> Han
  if (is_cjk(c) || (c >= 0x3000 && c <= 0x303F)) return 100;
  if (c >= 0x0370 && c <= 0x03FF) return 2;
  if (c >= 0x0400 && c <= 0x052F) return 3;
  if (c >= 0x0590 && c <= 0x05FF) return 4;
  if (c >= 0x0600 && c <= 0x06FF) return 5;
  if (c >= 0x0900 && c <= 0x097F) return 6;
  if (c >= 0x0E00 && c <= 0x0E7F) return 7;
  if (c >= 0xAC00 && c <= 0xD7AF) return 8;
  if (c >= 0x00C0 && c <= 0x024F && is_letter(c)) return 1;
  return 0;
}

class UnicodeScripts : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto& p : pieces) {
      size_t start = 0, i = 0;
      int last = -1;
      while (i < p.text.size()) {
        char32_t cp;
        int n = utf8_decode(p.text, i, &cp);
        int s = script_of(cp);
        bool fuse = s == -2 || last == -1 || last == -2 || s == last;
        if (!fuse && i > start) {
          out.push_back(Piece{p.text.substr(start, i - start), p.at_start && start == 0});
          start = i;
        }
        if (s != -2) last = s;
        i += n;
      }
      if (i > start) out.push_back(Piece{p.text.substr(start, i - start), p.at_start && start == 0});
    }
    pieces.swap(out);
  }
};

}  // namespace

Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  if (!j.is_object()) return error(ErrorCode::kFormatError, "pre_tokenizer: expected an object");
  std::string type = json_str(j, "type");
  if (type == "ByteLevel") {
    std::shared_ptr<Regex> re;
    if (json_bool(j, "use_regex", true)) {
      BALLAST_ASSIGN_OR_RETURN(re, Regex::compile(kGpt2Pattern));
    }
    return std::unique_ptr<PreTokenizer>(new ByteLevel(json_bool(j, "add_prefix_space", true), re));
  }
  if (type == "Split") {
    std::string lit;
    BALLAST_ASSIGN_OR_RETURN(auto re, pattern_regex(j.value("pattern", json()), &lit, "pre_tokenizer Split"));
    BALLAST_ASSIGN_OR_RETURN(auto behavior, parse_behavior(j, "pre_tokenizer Split"));
    return std::unique_ptr<PreTokenizer>(new RegexSplit(lit, re, behavior, json_bool(j, "invert", false)));
  }
  if (type == "Metaspace") {
    std::string rep = json_str(j, "replacement", "\xE2\x96\x81");
    PrependScheme scheme = PrependScheme::kAlways;
    std::string ps = json_str(j, "prepend_scheme");
    if (ps == "first") scheme = PrependScheme::kFirst;
    else if (ps == "never") scheme = PrependScheme::kNever;
    else if (ps.empty() && !json_bool(j, "add_prefix_space", true)) scheme = PrependScheme::kNever;
    return std::unique_ptr<PreTokenizer>(new Metaspace(rep, scheme, json_bool(j, "split", true)));
  }
  if (type == "Whitespace") {
    BALLAST_ASSIGN_OR_RETURN(auto re, Regex::compile("\\w+|[^\\w\\s]+"));
    return std::unique_ptr<PreTokenizer>(new RegexSplit("", re, Behavior::kRemoved, true));
  }
  if (type == "WhitespaceSplit")
    return std::unique_ptr<PreTokenizer>(new PredicateSplit([](char32_t c) { return is_whitespace(c); }, Behavior::kRemoved));
  if (type == "Digits") {
    bool individual = json_bool(j, "individual_digits", false);
    return std::unique_ptr<PreTokenizer>(new PredicateSplit(
        [](char32_t c) {
          auto k = utf8proc_category((utf8proc_int32_t)c);
          return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
        },
        individual ? Behavior::kIsolated : Behavior::kContiguous));
  }
  if (type == "Punctuation") {
    BALLAST_ASSIGN_OR_RETURN(auto behavior, parse_behavior(j, "pre_tokenizer Punctuation"));
    return std::unique_ptr<PreTokenizer>(new PredicateSplit(bert_punct, behavior));
  }
  if (type == "CharDelimiterSplit") {
    std::string d = json_str(j, "delimiter", " ");
    char32_t dc = 0;
    if (!d.empty()) utf8_decode(d, 0, &dc);
    return std::unique_ptr<PreTokenizer>(new PredicateSplit([dc](char32_t c) { return c == dc; }, Behavior::kRemoved));
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    items.emplace_back(new PredicateSplit([](char32_t c) { return is_whitespace(c); }, Behavior::kRemoved));
    items.emplace_back(new PredicateSplit(bert_punct, Behavior::kIsolated));
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(items)));
  }
  if (type == "UnicodeScripts") return std::unique_ptr<PreTokenizer>(new UnicodeScripts());
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    auto it = j.find("pretokenizers");
    if (it != j.end() && it->is_array()) {
      for (auto& e : *it) {
        BALLAST_ASSIGN_OR_RETURN(auto p, make_pre_tokenizer(e));
        if (p) items.push_back(std::move(p));
      }
    }
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(items)));
  }
  return error(ErrorCode::kUnsupported, "pre_tokenizer type \"" + type + "\" is not supported");
}

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  std::shared_ptr<Regex> re;
  if (use_regex) re = Regex::compile(kGpt2Pattern).value();
  return std::make_unique<ByteLevel>(add_prefix_space, re);
}

Result<std::unique_ptr<PreTokenizer>> make_regex_byte_level_pre_tokenizer(const std::vector<std::string>& regexes) {
  std::vector<std::unique_ptr<PreTokenizer>> items;
  for (auto& r : regexes) {
    BALLAST_ASSIGN_OR_RETURN(auto re, Regex::compile(r));
    items.emplace_back(new RegexSplit("", re, Behavior::kIsolated, false));
  }
  items.emplace_back(new ByteLevel(false, nullptr));
  return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(items)));
}

std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> items) {
  return std::make_unique<SequencePreTokenizer>(std::move(items));
}

}  // namespace ballast::tokenizer
