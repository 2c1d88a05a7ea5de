// PipelineTokenizer: the one Tokenizer implementation. Builders (tokenizer.json, legacy
// GPT-2 files, SentencePiece .model, GGUF) fill in its stages and added tokens.
#pragma once
#include <unordered_set>

#include "tokenizer/added_tokens.h"
#include "tokenizer/components.h"
#include "tokenizer/tokenizer.h"

namespace ballast::tokenizer {

// How text fragments between added tokens are prepared (llama.cpp SPM adds a space
// prefix only at the start and after special tokens; HF does it via normalizers).
struct PipelineOptions {
  AddedTokenMatcher::Mode match_mode = AddedTokenMatcher::Mode::kHf;
  bool spm_space_prefix = false;  // llama.cpp SPM: " " before fragments that follow BOS/specials
};

class PipelineTokenizer : public Tokenizer {
 public:
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  TokenizerSettings settings_;
  PipelineOptions options;

  // Registers an added token (replacing one with the same id). Call finalize() after.
  void add_token(const AddedToken& t);
  // Builds matchers and lookup tables; resolves settings ids.
  Status finalize();

  Result<std::vector<int32_t>> encode(std::string_view text, const EncodeOptions& opts) const override;
  Result<std::string> decode(std::span<const int32_t> ids, bool skip_special) const override;
  Result<std::string> decode_with(std::span<const int32_t> ids, bool skip_special, bool clean_up) const override;
  int32_t size() const override;
  std::optional<std::string> id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  bool is_special(int32_t id) const override;
  const std::vector<AddedToken>& added_tokens() const override { return added_; }
  const TokenizerSettings& settings() const override { return settings_; }
  void limit_special_matching(int32_t rows) override;

 private:
  void rebuild_matchers();
  Status encode_plain(std::string_view text, bool at_start, std::vector<int32_t>& out) const;
  const std::string* token_text(int32_t id) const;

  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, size_t> added_by_id_;
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::unordered_set<std::string> special_contents_;
  std::vector<uint8_t> special_flag_;  // per id: decode-time "special" (HF: content is special)
  AddedTokenMatcher raw_matcher_, norm_matcher_;
  int32_t match_limit_ = INT32_MAX;
};

// Reads settings from tokenizer_config.json content (null allowed).
void parse_tokenizer_config(const nlohmann::json& cfg, TokenizerSettings& s);
// Fills *_id fields from token strings.
void resolve_settings_ids(const Tokenizer& tok, TokenizerSettings& s);

}  // namespace ballast::tokenizer
