// PipelineTokenizer: encode = added-token split -> normalize -> split on normalized
// added tokens -> pre-tokenize -> model -> post-process; decode = ids -> token strings
// -> decoder chain -> (optional) clean-up of tokenization spaces.
#include "tokenizer/pipeline.h"

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

void PipelineTokenizer::add_token(const AddedToken& t) {
  auto it = added_by_id_.find(t.id);
  if (it != added_by_id_.end()) {
    added_[it->second] = t;
    return;
  }
  added_by_id_[t.id] = added_.size();
  added_.push_back(t);
}

Status PipelineTokenizer::finalize() {
  if (!model) return error(ErrorCode::kInternal, "tokenizer without a model");
  added_by_content_.clear();
  special_contents_.clear();
  added_by_id_.clear();
  for (size_t i = 0; i < added_.size(); ++i) {
    added_by_id_[added_[i].id] = i;
    added_by_content_[added_[i].content] = added_[i].id;
    if (added_[i].special) special_contents_.insert(added_[i].content);
  }
  int32_t n = size();
  special_flag_.assign(n, 0);
  for (int32_t id = 0; id < n; ++id) {
    const std::string* t = token_text(id);
    if (t && special_contents_.count(*t)) special_flag_[id] = 1;
  }
  rebuild_matchers();
  resolve_settings_ids(*this, settings_);
  return Status();
}

void PipelineTokenizer::rebuild_matchers() {
  std::vector<std::pair<std::string, AddedToken>> raw, norm;
  for (auto& t : added_) {
    if (t.id >= match_limit_) continue;
    if (t.normalized) {
      std::string c = t.content;
      if (normalizer) normalizer->normalize(c);
      norm.emplace_back(std::move(c), t);
    } else {
      raw.emplace_back(t.content, t);
    }
  }
  raw_matcher_.build(raw, options.match_mode);
  norm_matcher_.build(norm, options.match_mode);
}

void PipelineTokenizer::limit_special_matching(int32_t rows) {
  match_limit_ = rows;
  rebuild_matchers();
}

int32_t PipelineTokenizer::size() const {
  int32_t n = model ? model->vocab_size() : 0;
  for (auto& t : added_) n = std::max(n, t.id + 1);
  return n;
}

const std::string* PipelineTokenizer::token_text(int32_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return &added_[it->second].content;
  return model ? model->id_to_token(id) : nullptr;
}

std::optional<std::string> PipelineTokenizer::id_to_token(int32_t id) const {
  const std::string* t = token_text(id);
  if (!t) return std::nullopt;
  return *t;
}

std::optional<int32_t> PipelineTokenizer::token_to_id(std::string_view token) const {
  auto it = added_by_content_.find(std::string(token));
  if (it != added_by_content_.end()) return it->second;
  return model ? model->token_to_id(token) : std::nullopt;
}

bool PipelineTokenizer::is_special(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

Status PipelineTokenizer::encode_plain(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
  thread_local std::vector<Piece> pieces;
  pieces.clear();
  pieces.push_back(Piece{std::string(text), at_start});
  if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
  for (auto& p : pieces) {
    if (p.text.empty()) continue;
    BALLAST_RETURN_IF_ERROR(model->tokenize(p.text, out));
  }
  return Status();
}

Result<std::vector<int32_t>> PipelineTokenizer::encode(std::string_view input, const EncodeOptions& opts) const {
  std::string repaired;
  std::string_view text = input;
  if (!utf8_valid(input)) {
    repaired = utf8_lossy(input);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Segment> segs, segs2;
  raw_matcher_.split(text, opts.parse_special, segs);
  bool prev_special = true;  // llama.cpp SPM: prefix the first fragment
  for (const Segment& s : segs) {
    if (s.id >= 0) {
      ids.push_back(s.id);
      prev_special = true;
      continue;
    }
    std::string seg(text.substr(s.begin, s.end - s.begin));
    if (options.spm_space_prefix && prev_special) seg.insert(0, " ");
    prev_special = false;
    if (normalizer) normalizer->normalize(seg);
    if (norm_matcher_.empty()) {
      BALLAST_RETURN_IF_ERROR(encode_plain(seg, s.begin == 0, ids));
      continue;
    }
    norm_matcher_.split(seg, opts.parse_special, segs2);
    for (const Segment& s2 : segs2) {
      if (s2.id >= 0) {
        ids.push_back(s2.id);
        continue;
      }
      BALLAST_RETURN_IF_ERROR(
          encode_plain(std::string_view(seg).substr(s2.begin, s2.end - s2.begin), s.begin == 0 && s2.begin == 0, ids));
    }
  }
  if (post_processor) post_processor->process(ids, opts.add_special);
  return ids;
}

Result<std::string> PipelineTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  return decode_with(ids, skip_special, settings_.clean_up_tokenization_spaces.value_or(false));
}

Result<std::string> PipelineTokenizer::decode_with(std::span<const int32_t> ids, bool skip_special,
                                                   bool clean_up) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* t = token_text(id);
    if (!t) continue;
    if (skip_special && id < (int32_t)special_flag_.size() && special_flag_[id]) continue;
    tokens.push_back(*t);
  }
  std::string out;
  if (decoder) {
    decoder->decode_chain(tokens);
    for (auto& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
  }
  if (clean_up) out = clean_up_tokenization(std::move(out));
  return out;
}

// ---- settings ----

namespace {
std::optional<std::string> token_field(const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}
}  // namespace

void parse_tokenizer_config(const nlohmann::json& cfg, TokenizerSettings& s) {
  if (!cfg.is_object()) return;
  if (auto v = token_field(cfg, "bos_token")) s.bos_token = v;
  if (auto v = token_field(cfg, "eos_token")) s.eos_token = v;
  if (auto v = token_field(cfg, "pad_token")) s.pad_token = v;
  if (auto v = token_field(cfg, "unk_token")) s.unk_token = v;
  auto boolean = [&](const char* key) -> std::optional<bool> {
    auto it = cfg.find(key);
    if (it != cfg.end() && it->is_boolean()) return it->get<bool>();
    return std::nullopt;
  };
  if (auto v = boolean("add_bos_token")) s.add_bos_token = v;
  if (auto v = boolean("add_eos_token")) s.add_eos_token = v;
  if (auto v = boolean("clean_up_tokenization_spaces")) s.clean_up_tokenization_spaces = v;
  auto ct = cfg.find("chat_template");
  if (ct != cfg.end()) {
    if (ct->is_string()) {
      s.chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {
      for (auto& e : *ct) {
        if (!e.is_object() || !e.contains("name") || !e.contains("template")) continue;
        if (!e["name"].is_string() || !e["template"].is_string()) continue;
        std::string name = e["name"].get<std::string>();
        s.named_chat_templates[name] = e["template"];
        if (name == "default") s.chat_template = e["template"].get<std::string>();
      }
    }
  }
}

void resolve_settings_ids(const Tokenizer& tok, TokenizerSettings& s) {
  auto resolve = [&](const std::optional<std::string>& t, std::optional<int32_t>& id) {
    if (t && !id) {
      if (auto v = tok.token_to_id(*t)) id = v;
    }
  };
  resolve(s.bos_token, s.bos_id);
  resolve(s.eos_token, s.eos_id);
  resolve(s.pad_token, s.pad_id);
  resolve(s.unk_token, s.unk_id);
}

}  // namespace ballast::tokenizer
