// Tokenizer::from_json: builds the pipeline from tokenizer.json (each stage chosen by its
// "type") plus tokenizer_config.json settings.
#include "tokenizer/tokenizer_json.h"

#include "tokenizer/models/bpe.h"
#include "tokenizer/models/unigram.h"
#include "tokenizer/models/wordpiece.h"
#include "tokenizer/pipeline.h"

namespace ballast::tokenizer {
namespace {

Status split_merge(const json& m, std::string_view* a, std::string_view* b, const std::string** holder) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
      return error(ErrorCode::kFormatError, "model.merges: entry \"" + s + "\" is not \"a b\"");
    *a = std::string_view(s).substr(0, sp);
    *b = std::string_view(s).substr(sp + 1);
    return Status();
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    *a = m[0].get_ref<const std::string&>();
    *b = m[1].get_ref<const std::string&>();
    return Status();
  }
  return error(ErrorCode::kFormatError, "model.merges: entry " + m.dump() + " is neither \"a b\" nor [a, b]");
}

Result<std::unique_ptr<Model>> make_bpe(const json& m, PrebuiltVocab* pre) {
  BpeOptions o;
  if (m.contains("unk_token") && m["unk_token"].is_string()) o.unk_token = m["unk_token"].get<std::string>();
  o.continuing_subword_prefix = json_str(m, "continuing_subword_prefix");
  o.end_of_word_suffix = json_str(m, "end_of_word_suffix");
  o.fuse_unk = json_bool(m, "fuse_unk", false);
  o.byte_fallback = json_bool(m, "byte_fallback", false);
  o.ignore_merges = json_bool(m, "ignore_merges", false);
  auto bpe = std::make_unique<BpeModel>(o);
  if (pre) {
    bpe->reserve(pre->vocab.size(), pre->merges.size());
    for (auto& [tok, id] : pre->vocab) bpe->add_token(std::move(tok), id);
    pre->vocab.clear();
    BALLAST_RETURN_IF_ERROR(bpe->add_merges(pre->merges));
  } else {
    auto v = m.find("vocab");
    if (v == m.end() || !v->is_object()) return error(ErrorCode::kFormatError, "model.vocab: expected an object");
    auto mg = m.find("merges");
    size_t n_merges = mg != m.end() && mg->is_array() ? mg->size() : 0;
    bpe->reserve(v->size(), n_merges);
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (!it.value().is_number_integer())
        return error(ErrorCode::kFormatError, "model.vocab: id of \"" + it.key() + "\" is not an integer");
      bpe->add_token(it.key(), it.value().get<int32_t>());
    }
    if (n_merges) {
      for (auto& e : *mg) {
        std::string_view a, b;
        const std::string* h = nullptr;
        BALLAST_RETURN_IF_ERROR(split_merge(e, &a, &b, &h));
        BALLAST_RETURN_IF_ERROR(bpe->add_merge(a, b));
      }
    }
  }
  bpe->finalize();
  return std::unique_ptr<Model>(std::move(bpe));
}

Result<std::unique_ptr<Model>> make_unigram(const json& m) {
  auto v = m.find("vocab");
  if (v == m.end() || !v->is_array()) return error(ErrorCode::kFormatError, "model.vocab: expected [[piece, score], ...]");
  std::vector<std::pair<std::string, double>> pieces;
  pieces.reserve(v->size());
  for (auto& e : *v) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
      return error(ErrorCode::kFormatError, "model.vocab: entry " + e.dump() + " is not [piece, score]");
    pieces.emplace_back(e[0].get<std::string>(), e[1].get<double>());
  }
  std::optional<int32_t> unk;
  if (m.contains("unk_id") && m["unk_id"].is_number_integer()) unk = m["unk_id"].get<int32_t>();
  return std::unique_ptr<Model>(new UnigramModel(std::move(pieces), unk, json_bool(m, "byte_fallback", false)));
}

template <class M>
Status fill_vocab(M& model, const json& m, const PrebuiltVocab* pre) {
  if (pre) {
    for (auto& [tok, id] : pre->vocab) model.add_token(tok, id);
    return Status();
  }
  auto v = m.find("vocab");
  if (v == m.end() || !v->is_object()) return error(ErrorCode::kFormatError, "model.vocab: expected an object");
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_number_integer())
      return error(ErrorCode::kFormatError, "model.vocab: id of \"" + it.key() + "\" is not an integer");
    model.add_token(it.key(), it.value().get<int32_t>());
  }
  return Status();
}

}  // namespace

Result<std::unique_ptr<Model>> make_model(const json& m, PrebuiltVocab* pre) {
  if (!m.is_object()) return error(ErrorCode::kFormatError, "model: expected an object");
  std::string type = json_str(m, "type");
  if (type.empty()) {
    if (m.contains("merges")) type = "BPE";
    else if (m.contains("vocab") && m["vocab"].is_array()) type = "Unigram";
    else if (m.contains("continuing_subword_prefix")) type = "WordPiece";
    else type = "WordLevel";
  }
  if (type == "BPE") return make_bpe(m, pre);
  if (type == "Unigram") return make_unigram(m);
  if (type == "WordPiece") {
    auto wp = std::make_unique<WordPieceModel>(json_str(m, "unk_token", "[UNK]"),
                                               json_str(m, "continuing_subword_prefix", "##"),
                                               m.value("max_input_chars_per_word", size_t(100)));
    BALLAST_RETURN_IF_ERROR(fill_vocab(*wp, m, pre));
    return std::unique_ptr<Model>(std::move(wp));
  }
  if (type == "WordLevel") {
    auto wl = std::make_unique<WordLevelModel>(json_str(m, "unk_token", "<unk>"));
    BALLAST_RETURN_IF_ERROR(fill_vocab(*wl, m, pre));
    return std::unique_ptr<Model>(std::move(wl));
  }
  return error(ErrorCode::kUnsupported, "model type \"" + type + "\" is not supported");
}

Result<AddedToken> parse_added_token(const json& e) {
  if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || !e.contains("content") ||
      !e["content"].is_string())
    return error(ErrorCode::kFormatError, "added_tokens: entry " + e.dump().substr(0, 200) + " needs id and content");
  AddedToken t;
  t.id = e["id"].get<int32_t>();
  t.content = e["content"].get<std::string>();
  t.special = json_bool(e, "special", false);
  t.normalized = json_bool(e, "normalized", !t.special);
  t.lstrip = json_bool(e, "lstrip", false);
  t.rstrip = json_bool(e, "rstrip", false);
  t.single_word = json_bool(e, "single_word", false);
  return t;
}

Result<std::unique_ptr<Tokenizer>> build_from_json(const json& tj, const json& cfg, const std::string& source,
                                                   PrebuiltVocab* pre) {
  auto where = [&](const Status& st) { return Status(st.code(), source + ": " + st.message()); };
  try {
    if (!tj.is_object()) return error(ErrorCode::kFormatError, source + ": tokenizer.json is not a JSON object");
    auto tok = std::make_unique<PipelineTokenizer>();
    auto get = [&](const char* k) -> const json& {
      static const json kNull;
      auto it = tj.find(k);
      return it == tj.end() ? kNull : *it;
    };
    auto n = make_normalizer(get("normalizer"));
    if (!n.ok()) return where(n.status());
    tok->normalizer = std::move(n.value());
    auto p = make_pre_tokenizer(get("pre_tokenizer"));
    if (!p.ok()) return where(p.status());
    tok->pre_tokenizer = std::move(p.value());
    auto m = make_model(get("model"), pre);
    if (!m.ok()) return where(m.status());
    tok->model = std::move(m.value());
    auto pp = make_post_processor(get("post_processor"));
    if (!pp.ok()) return where(pp.status());
    tok->post_processor = std::move(pp.value());
    auto d = make_decoder(get("decoder"));
    if (!d.ok()) return where(d.status());
    tok->decoder = std::move(d.value());
    const json& added = get("added_tokens");
    if (added.is_array()) {
      for (auto& e : added) {
        auto t = parse_added_token(e);
        if (!t.ok()) return where(t.status());
        tok->add_token(t.value());
      }
    }
    tok->settings_.source = source;
    parse_tokenizer_config(cfg, tok->settings_);
    BALLAST_RETURN_IF_ERROR(tok->finalize());
    return std::unique_ptr<Tokenizer>(std::move(tok));
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormatError, source + ": " + e.what());
  }
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json(const nlohmann::json& tokenizer_json,
                                                        const nlohmann::json& tokenizer_config,
                                                        const std::string& source) {
  return build_from_json(tokenizer_json, tokenizer_config, source, nullptr);
}

}  // namespace ballast::tokenizer
