// SentencePiece tokenizer.model: a Tokenizer wrapping libsentencepiece's
// SentencePieceProcessor, with transformers' slow-tokenizer (LlamaTokenizer, legacy)
// conventions around it:
//  - encode: special literals (control + unknown pieces, and added_tokens_decoder entries of
//    tokenizer_config.json) split the text when parse_special (non-special added tokens
//    always); each plain segment is encoded by SentencePiece on its own (user-defined
//    pieces are matched by SentencePiece itself, so always). add_special prepends BOS
//    (add_bos_token, default true) and appends EOS (add_eos_token, default false); T5's
//    spiece.model (or tokenizer_class T5Tokenizer): no BOS, EOS appended, and the
//    <extra_id_N> sentinels (tokenizer_config extra_ids, default 100) after the pieces.
//  - decode: runs of ordinary ids are decoded by SentencePiece; special ids are emitted
//    as their piece text, or dropped with skip_special (then the rest is one run).
//    Ids outside the vocabulary are dropped.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "tokenizer/added_tokens.h"
#include "tokenizer/legacy.h"
#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> token_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  Result<std::vector<int32_t>> encode(std::string_view text, const EncodeOptions& opts) const override {
    std::string repaired;
    if (!utf8_valid(text)) {
      repaired = utf8_lossy(text);
      text = repaired;
    }
    std::vector<int32_t> out;
    if (opts.add_special && add_bos_ && settings_.bos_id) out.push_back(*settings_.bos_id);
    std::vector<Segment> segs;
    if (!matcher_.empty()) {
      matcher_.split(text, opts.parse_special, segs);
    } else {
      segs.push_back(Segment{0, text.size(), -1});
    }
    std::vector<int> ids;
    for (const Segment& s : segs) {
      if (s.id >= 0) {
        out.push_back(s.id);
        continue;
      }
      if (s.end <= s.begin) continue;
      ids.clear();
      auto st = sp_.Encode(absl::string_view(text.data() + s.begin, s.end - s.begin), &ids);
      if (!st.ok()) return error(ErrorCode::kInternal, source_ + ": SentencePiece encode failed: " + st.ToString());
      out.insert(out.end(), ids.begin(), ids.end());
    }
    if (opts.add_special && add_eos_ && settings_.eos_id) out.push_back(*settings_.eos_id);
    return out;
  }

  Result<std::string> decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out, piece_text;
    std::vector<int> run;
    auto flush = [&]() -> Status {
      if (run.empty()) return Status();
      piece_text.clear();
      auto st = sp_.Decode(run, &piece_text);
      if (!st.ok()) return error(ErrorCode::kInternal, source_ + ": SentencePiece decode failed: " + st.ToString());
      out += piece_text;
      run.clear();
      return Status();
    };
    for (int32_t id : ids) {
      if (id < 0 || id >= size_) continue;
      bool special = is_special(id);
      if (id < sp_size_ && !special && !extra_content_.count(id)) {
        run.push_back(id);
        continue;
      }
      if (special && skip_special) continue;
      BALLAST_RETURN_IF_ERROR(flush());
      auto t = id_to_token(id);
      if (t) out += *t;
    }
    BALLAST_RETURN_IF_ERROR(flush());
    if (!utf8_valid(out)) out = utf8_lossy(out);
    return out;
  }

  int32_t size() const override { return size_; }

  std::optional<std::string> id_to_token(int32_t id) const override {
    if (id < 0 || id >= size_) return std::nullopt;
    auto it = extra_content_.find(id);
    if (it != extra_content_.end()) return it->second;
    if (id < sp_size_) return sp_.IdToPiece(id);
    return std::nullopt;
  }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    for (const auto& [id, content] : extra_content_)
      if (content == token) return id;
    if (sp_size_ == 0) return std::nullopt;
    int id = sp_.PieceToId(absl::string_view(token.data(), token.size()));
    // PieceToId answers unk_id for unknown pieces; only the unknown piece itself maps there.
    if (id < 0 || id >= sp_size_) return std::nullopt;
    if (sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }

  bool is_special(int32_t id) const override {
    if (id >= 0 && id < sp_size_ && special_[id]) return true;
    return extra_special_.count(id) > 0;
  }

  const std::vector<AddedToken>& added_tokens() const override { return added_; }
  const TokenizerSettings& settings() const override { return settings_; }

  void limit_special_matching(int32_t rows) override {
    limit_rows_ = rows;
    build_matcher();
  }

  Status init(const std::string& path, const json& cfg) {
    source_ = path;
    BALLAST_ASSIGN_OR_RETURN(std::string blob, read_file(path));
    auto st = sp_.LoadFromSerializedProto(absl::string_view(blob.data(), blob.size()));
    if (!st.ok() || sp_.GetPieceSize() <= 0)
      return error(ErrorCode::kFormatError,
                   path + ": not a SentencePiece model" + (st.ok() ? std::string() : " (" + st.ToString() + ")"));
    sp_size_ = sp_.GetPieceSize();
    size_ = sp_size_;
    special_.assign(sp_size_, false);
    for (int i = 0; i < sp_size_; ++i) special_[i] = sp_.IsControl(i) || sp_.IsUnknown(i);

    settings_.source = path;
    auto set_id = [&](int v, std::optional<int32_t>& id, std::optional<std::string>& tok) {
      if (v >= 0 && v < sp_size_) {
        id = v;
        tok = sp_.IdToPiece(v);
      }
    };
    set_id(sp_.bos_id(), settings_.bos_id, settings_.bos_token);
    set_id(sp_.eos_id(), settings_.eos_id, settings_.eos_token);
    set_id(sp_.unk_id(), settings_.unk_id, settings_.unk_token);
    set_id(sp_.pad_id(), settings_.pad_id, settings_.pad_token);

    // tokenizer_config.json's added_tokens_decoder: extra (or re-labelled) added tokens.
    fs::path dir = fs::path(path).parent_path();
    bool have_decoder = false;
    if (cfg.is_object() && cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
      have_decoder = true;
      for (auto it = cfg["added_tokens_decoder"].begin(); it != cfg["added_tokens_decoder"].end(); ++it) {
        AddedToken t;
        try {
          t.id = std::stoi(it.key());
        } catch (...) {
          return error(ErrorCode::kFormatError, (dir / "tokenizer_config.json").string() +
                                                    ": added_tokens_decoder key \"" + it.key() + "\" is not an id");
        }
        const json& v = it.value();
        auto c = token_string(v);
        if (!c || t.id < 0)
          return error(ErrorCode::kFormatError,
                       (dir / "tokenizer_config.json").string() + ": bad added_tokens_decoder entry " + it.key());
        t.content = *c;
        t.special = v.value("special", false);
        t.normalized = v.value("normalized", false);
        t.lstrip = v.value("lstrip", false);
        t.rstrip = v.value("rstrip", false);
        t.single_word = v.value("single_word", false);
        added_.push_back(t);
      }
      std::sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
      for (const auto& t : added_) {
        if (t.id >= sp_size_ || (t.id < sp_size_ && sp_.IdToPiece(t.id) != t.content))
          extra_content_[t.id] = t.content;
        if (t.special) extra_special_.insert(t.id);
        size_ = std::max(size_, t.id + 1);
      }
    }
    // T5's slow tokenizer (spiece.model): <extra_id_0..N-1> sentinels after the pieces,
    // <extra_id_0> the highest id; its eos is appended and there is no BOS.
    const bool t5 = fs::path(path).filename() == "spiece.model" ||
                    (cfg.is_object() && cfg.value("tokenizer_class", std::string()).rfind("T5Tokenizer", 0) == 0);
    if (t5 && !have_decoder) {
      const int n_extra = cfg.is_object() && cfg.contains("extra_ids") && cfg["extra_ids"].is_number_integer()
                              ? cfg["extra_ids"].get<int>()
                              : 100;
      for (int i = 0; i < n_extra; ++i) {
        AddedToken t;
        t.id = sp_size_ + n_extra - 1 - i;
        t.content = "<extra_id_" + std::to_string(i) + ">";
        t.special = true;
        extra_content_[t.id] = t.content;
        extra_special_.insert(t.id);
        added_.push_back(t);
        size_ = std::max(size_, t.id + 1);
      }
    }
    if (!have_decoder) {
      for (int i = 0; i < sp_size_; ++i) {
        if (!special_[i]) continue;
        AddedToken t;
        t.id = i;
        t.content = sp_.IdToPiece(i);
        t.special = true;
        added_.push_back(t);
      }
    }

    // Settings: special_tokens_map.json, then tokenizer_config.json (the latter wins).
    BALLAST_ASSIGN_OR_RETURN(json stm, read_optional_json(dir / "special_tokens_map.json"));
    auto apply = [&](const json& j) {
      if (!j.is_object()) return;
      auto take = [&](const char* key, std::optional<std::string>& tok, std::optional<int32_t>& id) {
        if (!j.contains(key)) return;
        auto s = token_string(j[key]);
        if (!s) return;
        tok = *s;
        if (auto i = token_to_id(*s)) id = *i;
      };
      take("bos_token", settings_.bos_token, settings_.bos_id);
      take("eos_token", settings_.eos_token, settings_.eos_id);
      take("unk_token", settings_.unk_token, settings_.unk_id);
      take("pad_token", settings_.pad_token, settings_.pad_id);
      if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) settings_.add_bos_token = j["add_bos_token"].get<bool>();
      if (j.contains("add_eos_token") && j["add_eos_token"].is_boolean()) settings_.add_eos_token = j["add_eos_token"].get<bool>();
      if (j.contains("clean_up_tokenization_spaces") && j["clean_up_tokenization_spaces"].is_boolean())
        settings_.clean_up_tokenization_spaces = j["clean_up_tokenization_spaces"].get<bool>();
      if (j.contains("chat_template")) {
        const json& ct = j["chat_template"];
        if (ct.is_string()) {
          settings_.chat_template = ct.get<std::string>();
        } else if (ct.is_array()) {
          for (const auto& e : ct)
            if (e.is_object() && e.contains("name") && e.contains("template") && e["name"].is_string() &&
                e["template"].is_string()) {
              settings_.named_chat_templates[e["name"].get<std::string>()] = e["template"];
              if (e["name"] == "default") settings_.chat_template = e["template"].get<std::string>();
            }
        }
      }
    };
    apply(stm);
    apply(cfg);
    if (cfg.is_object()) settings_.source = (dir / "tokenizer_config.json").string();
    add_bos_ = settings_.add_bos_token.value_or(!t5);
    add_eos_ = settings_.add_eos_token.value_or(t5);
    build_matcher();
    return Status();
  }

 private:
  void build_matcher() {
    std::vector<std::pair<std::string, AddedToken>> toks;
    std::map<std::string, bool> seen;
    auto add = [&](const AddedToken& t) {
      if (t.content.empty() || t.id < 0 || t.id >= limit_rows_ || seen.count(t.content)) return;
      seen[t.content] = true;
      toks.emplace_back(t.content, t);
    };
    for (const auto& t : added_) add(t);
    for (int i = 0; i < sp_size_; ++i) {
      if (!special_[i]) continue;
      AddedToken t;
      t.id = i;
      t.content = sp_.IdToPiece(i);
      t.special = true;
      add(t);
    }
    matcher_ = AddedTokenMatcher();
    matcher_.build(toks, AddedTokenMatcher::Mode::kHf);
  }

  sentencepiece::SentencePieceProcessor sp_;
  std::string source_;
  int32_t sp_size_ = 0, size_ = 0;
  int32_t limit_rows_ = INT32_MAX;
  std::vector<bool> special_;                 // control / unknown pieces
  std::map<int32_t, std::string> extra_content_;  // added tokens whose text differs from the piece
  std::set<int32_t> extra_special_;
  std::vector<AddedToken> added_;
  TokenizerSettings settings_;
  bool add_bos_ = true, add_eos_ = false;
  AddedTokenMatcher matcher_;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_sentencepiece_model(const std::string& path, const json& cfg) {
  auto tok = std::make_unique<SentencePieceTokenizer>();
  BALLAST_RETURN_IF_ERROR(tok->init(path, cfg));
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace ballast::tokenizer
