// Legacy GPT-2 tokenizer files: vocab.json + merges.txt (+ added_tokens.json,
// special_tokens_map.json, tokenizer_config.json) -> the byte-level BPE pipeline that
// transformers' GPT2TokenizerFast builds from them.
#include "tokenizer/legacy.h"

#include "tokenizer/models/bpe.h"
#include "tokenizer/pipeline.h"

namespace ballast::tokenizer {

namespace fs = std::filesystem;

namespace {
std::optional<std::string> token_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}
}  // namespace

Result<std::unique_ptr<Tokenizer>> load_gpt2_legacy(const std::string& dir_str, const json& cfg) {
  fs::path dir(dir_str);
  std::string vocab_path = (dir / "vocab.json").string(), merges_path = (dir / "merges.txt").string();
  BALLAST_ASSIGN_OR_RETURN(json vocab, read_json(vocab_path));
  if (!vocab.is_object()) return error(ErrorCode::kFormatError, vocab_path + ": expected an object {token: id}");
  BALLAST_ASSIGN_OR_RETURN(std::string merges, read_file(merges_path));
  auto bpe = std::make_unique<BpeModel>(BpeOptions{});
  bpe->reserve(vocab.size(), vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer())
      return error(ErrorCode::kFormatError, vocab_path + ": id of \"" + it.key() + "\" is not an integer");
    bpe->add_token(it.key(), it.value().get<int32_t>());
  }
  size_t pos = 0, line_no = 0;
  while (pos < merges.size()) {
    size_t nl = merges.find('\n', pos);
    if (nl == std::string::npos) nl = merges.size();
    std::string_view line(merges.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos)
      return error(ErrorCode::kFormatError, merges_path + ":" + std::to_string(line_no) + ": expected \"a b\"");
    Status st = bpe->add_merge(line.substr(0, sp), line.substr(sp + 1));
    if (!st.ok()) return error(st.code(), merges_path + ":" + std::to_string(line_no) + ": " + st.message());
  }
  bpe->finalize();
  auto tok = std::make_unique<PipelineTokenizer>();
  bool add_prefix_space = cfg.is_object() && cfg.value("add_prefix_space", false);
  tok->pre_tokenizer = make_byte_level_pre_tokenizer(add_prefix_space, true);
  tok->decoder = make_byte_level_decoder();
  tok->settings_.source = dir_str;
  parse_tokenizer_config(cfg, tok->settings_);
  BALLAST_ASSIGN_OR_RETURN(json stm, read_optional_json(dir / "special_tokens_map.json"));
  BALLAST_ASSIGN_OR_RETURN(json added, read_optional_json(dir / "added_tokens.json"));
  // Special tokens: special_tokens_map.json, else tokenizer_config.json, else GPT-2's
  // default <|endoftext|> (bos = eos = unk).
  std::vector<std::string> specials;
  const json& src = stm.is_object() ? stm : cfg;
  if (src.is_object()) {
    for (const char* k : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"}) {
      if (src.contains(k))
        if (auto s = token_string(src[k])) specials.push_back(*s);
    }
    if (src.contains("additional_special_tokens") && src["additional_special_tokens"].is_array())
      for (auto& e : src["additional_special_tokens"])
        if (auto s = token_string(e)) specials.push_back(*s);
    if (stm.is_object()) parse_tokenizer_config(stm, tok->settings_);
  }
  if (specials.empty() && bpe->token_to_id("<|endoftext|>")) {
    specials.push_back("<|endoftext|>");
    if (!tok->settings_.bos_token) tok->settings_.bos_token = "<|endoftext|>";
    if (!tok->settings_.eos_token) tok->settings_.eos_token = "<|endoftext|>";
    if (!tok->settings_.unk_token) tok->settings_.unk_token = "<|endoftext|>";
  }
  int32_t next_id = bpe->vocab_size();
  std::vector<AddedToken> extra;
  if (added.is_object()) {
    for (auto it = added.begin(); it != added.end(); ++it) {
      if (!it.value().is_number_integer()) continue;
      AddedToken t;
      t.id = it.value().get<int32_t>();
      t.content = it.key();
      t.normalized = true;
      extra.push_back(t);
      next_id = std::max(next_id, t.id + 1);
    }
  }
  for (auto& s : specials) {
    AddedToken t;
    t.content = s;
    t.special = true;
    auto id = bpe->token_to_id(s);
    bool found = false;
    for (auto& e : extra)
      if (e.content == s) { e.special = true; e.normalized = false; found = true; }
    if (found) continue;
    t.id = id ? *id : next_id++;
    extra.push_back(t);
  }
  bool add_bos = tok->settings_.add_bos_token.value_or(false);
  tok->model = std::move(bpe);
  for (auto& t : extra) tok->add_token(t);
  BALLAST_RETURN_IF_ERROR(tok->finalize());
  if (add_bos && tok->settings_.bos_id) tok->post_processor = make_bos_eos_post_processor({*tok->settings_.bos_id}, {});
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace ballast::tokenizer
