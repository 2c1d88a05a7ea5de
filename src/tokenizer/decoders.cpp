// Decoders: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece,
// BPEDecoder, CTC and Sequence. Each rewrites the list of token strings like HF's
// decode_chain; the final text is the concatenation.
#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

Result<std::shared_ptr<Regex>> pattern_regex(const json& pattern, std::string* literal, const char* where);

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  size_t pos = s.find(from);
  if (pos == std::string::npos) return s;
  std::string out;
  size_t prev = 0;
  while (pos != std::string::npos) {
    out.append(s, prev, pos - prev);
    out += to;
    prev = pos + from.size();
    pos = s.find(from, prev);
  }
  out.append(s, prev, std::string::npos);
  return out;
}

std::string clean_up_tokenization(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto& [a, b] : kRules) s = replace_all(std::move(s), a, b);
  return s;
}

namespace {

std::string wordpiece_cleanup(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto& [a, b] : kRules) s = replace_all(std::move(s), a, b);
  return s;
}

class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (auto& t : tokens) {
      size_t start = bytes.size();
      bool ok = true;
      size_t i = 0;
      while (i < t.size()) {
        char32_t cp;
        int n = utf8_decode(t, i, &cp);
        int b = char_to_byte(cp);
        if (b < 0) { ok = false; break; }
        bytes.push_back(char(b));
        i += n;
      }
      if (!ok) {
        bytes.resize(start);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool prepend) : rep_(std::move(rep)), prepend_(prepend) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(std::move(tokens[i]), rep_, (i == 0 && prepend_) ? "" : " ");
  }

 private:
  std::string rep_;
  bool prepend_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (utf8_valid(pending)) out.push_back(pending);
      else
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        auto hex = [](char c) -> int {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          return -1;
        };
        int h = hex(t[3]), l = hex(t[4]);
        if (h >= 0 && l >= 0) byte = h * 16 + l;
      }
      if (byte >= 0) {
        pending.push_back(char(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && b < e && t.compare(b, content_.size(), content_) == 0; ++k) b += content_.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() &&
                         t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string lit, std::shared_ptr<Regex> re, std::string content)
      : lit_(std::move(lit)), re_(std::move(re)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      if (!re_) {
        t = replace_all(std::move(t), lit_, content_);
        continue;
      }
      std::vector<std::pair<size_t, size_t>> m;
      re_->find_all(t, m);
      if (m.empty()) continue;
      std::string out;
      size_t pos = 0;
      for (auto [b, e] : m) {
        out.append(t, pos, b - pos);
        out += content_;
        pos = e;
      }
      out.append(t, pos, std::string::npos);
      t.swap(out);
    }
  }

 private:
  std::string lit_;
  std::shared_ptr<Regex> re_;
  std::string content_;
};

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t.insert(0, " ");
      }
      if (cleanup_) t = wordpiece_cleanup(std::move(t));
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(std::move(tokens[i]), suffix_, i + 1 == tokens.size() ? "" : " ");
  }

 private:
  std::string suffix_;
};

class CtcDecoder : public Decoder {
 public:
  CtcDecoder(std::string pad, std::string delim, bool cleanup)
      : pad_(std::move(pad)), delim_(std::move(delim)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0 && tokens[i] == tokens[i - 1]) continue;
      std::string r = replace_all(tokens[i], pad_, "");
      if (cleanup_) r = replace_all(wordpiece_cleanup(std::move(r)), delim_, " ");
      if (!r.empty()) out.push_back(std::move(r));
    }
    tokens.swap(out);
  }

 private:
  std::string pad_, delim_;
  bool cleanup_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& d : items_) d->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

}  // namespace

Result<std::unique_ptr<Decoder>> make_decoder(const json& j) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  if (!j.is_object()) return error(ErrorCode::kFormatError, "decoder: expected an object");
  std::string type = json_str(j, "type");
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "Metaspace") {
    std::string ps = json_str(j, "prepend_scheme");
    bool prepend = ps.empty() ? json_bool(j, "add_prefix_space", true) : ps != "never";
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(json_str(j, "replacement", "\xE2\x96\x81"), prepend));
  }
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Strip") {
    return std::unique_ptr<Decoder>(new StripDecoder(json_str(j, "content", " "), j.value("start", size_t(0)),
                                                     j.value("stop", size_t(0))));
  }
  if (type == "Replace") {
    std::string lit;
    BALLAST_ASSIGN_OR_RETURN(auto re, pattern_regex(j.value("pattern", json()), &lit, "decoder Replace"));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(lit, re, json_str(j, "content")));
  }
  if (type == "WordPiece")
    return std::unique_ptr<Decoder>(new WordPieceDecoder(json_str(j, "prefix", "##"), json_bool(j, "cleanup", true)));
  if (type == "BPEDecoder") return std::unique_ptr<Decoder>(new BpeDecoder(json_str(j, "suffix", "</w>")));
  if (type == "CTC")
    return std::unique_ptr<Decoder>(new CtcDecoder(json_str(j, "pad_token", "<pad>"),
                                                   json_str(j, "word_delimiter_token", "|"), json_bool(j, "cleanup", true)));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> items;
    auto it = j.find("decoders");
    if (it != j.end() && it->is_array()) {
      for (auto& e : *it) {
        BALLAST_ASSIGN_OR_RETURN(auto d, make_decoder(e));
        if (d) items.push_back(std::move(d));
      }
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(items)));
  }
  return error(ErrorCode::kUnsupported, "decoder type \"" + type + "\" is not supported");
}

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }
std::unique_ptr<Decoder> make_sequence_decoder(std::vector<std::unique_ptr<Decoder>> items) {
  return std::make_unique<SequenceDecoder>(std::move(items));
}
std::unique_ptr<Decoder> make_replace_decoder(std::string pattern, std::string content) {
  return std::make_unique<ReplaceDecoder>(std::move(pattern), nullptr, std::move(content));
}
std::unique_ptr<Decoder> make_byte_fallback_decoder() { return std::make_unique<ByteFallbackDecoder>(); }
std::unique_ptr<Decoder> make_fuse_decoder() { return std::make_unique<FuseDecoder>(); }
std::unique_ptr<Decoder> make_strip_decoder(std::string content, size_t start, size_t stop) {
  return std::make_unique<StripDecoder>(std::move(content), start, stop);
}

}  // namespace ballast::tokenizer
