// Tokenizer: the Hugging Face pipeline (normalizer -> pre-tokenizer -> model ->
// post-processor -> decoder) driven by tokenizer.json, plus adapters that build the
// same pipeline from legacy GPT-2 files, SentencePiece tokenizer.model and GGUF vocabularies.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ballast::io { class GgufFile; }

namespace ballast::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// Settings that live outside tokenizer.json proper (tokenizer_config.json,
// special_tokens_map.json, GGUF tokenizer.ggml.* keys). Unset fields are nullopt.
struct TokenizerSettings {
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;  // token strings
  std::optional<int32_t> bos_id, eos_id, pad_id, unk_id;                  // resolved ids
  std::vector<int32_t> extra_eos_ids;        // e.g. GGUF eot / eom ids
  std::optional<bool> add_bos_token, add_eos_token;
  std::optional<bool> clean_up_tokenization_spaces;
  std::optional<std::string> chat_template;   // the default template, if any
  nlohmann::json named_chat_templates = nlohmann::json::object();  // name -> template
  std::string source;                          // where the settings came from (file path)
  bool from_gguf = false;                      // read from GGUF tokenizer.ggml.* keys
};

struct EncodeOptions {
  bool add_special = true;     // post-processor's special tokens (BOS, ...)
  bool parse_special = true;   // match special added-token literals in the text (HF default)
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // PATH: tokenizer.json file; a directory with tokenizer.json, or vocab.json + merges.txt,
  // or tokenizer.model; a .gguf file (its embedded vocabulary). tokenizer_config.json /
  // special_tokens_map.json / added_tokens.json beside it are read when present.
  static Result<std::unique_ptr<Tokenizer>> load(const std::string& path);
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const io::GgufFile& gguf);
  // tokenizer.json content (+ optional tokenizer_config.json content, may be null).
  static Result<std::unique_ptr<Tokenizer>> from_json(const nlohmann::json& tokenizer_json,
                                                      const nlohmann::json& tokenizer_config,
                                                      const std::string& source);

  virtual Result<std::vector<int32_t>> encode(std::string_view text,
                                              const EncodeOptions& opts) const = 0;
  // As transformers' decode: applies clean_up_tokenization_spaces when the config sets it.
  virtual Result<std::string> decode(std::span<const int32_t> ids, bool skip_special) const = 0;
  // decode() with the clean-up chosen by the caller. clean_up = false is lossless: the
  // text the ids stand for (" ." stays " ."), what generated text should be.
  virtual Result<std::string> decode_with(std::span<const int32_t> ids, bool skip_special, bool clean_up) const {
    (void)clean_up;  // tokenizers without a clean-up step
    return decode(ids, skip_special);
  }

  // Number of ids: max defined id + 1 (vocab + added tokens).
  virtual int32_t size() const = 0;
  // The raw piece stored for an id (e.g. "Ġthe", "▁the", "<0x0A>"); nullopt for holes.
  virtual std::optional<std::string> id_to_token(int32_t id) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual const std::vector<AddedToken>& added_tokens() const = 0;
  virtual const TokenizerSettings& settings() const = 0;

  // Vocabulary safety: added tokens with id >= rows are never produced from text
  // (their literal is tokenized as plain text). Called once after the model is known.
  virtual void limit_special_matching(int32_t rows) = 0;
};

// Streaming detokenizer: feed ids one at a time; each call returns the text that became
// final. Deltas never split a UTF-8 character, and their concatenation equals
// decode_with(all ids, skip_special, clean_up) exactly. clean_up defaults to off
// (lossless generated text); on, transformers' clean_up_tokenization is applied.
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tok, bool skip_special, bool clean_up = false);
  Result<std::string> push(int32_t id);
  // Remaining text at the end of the sequence.
  Result<std::string> finish();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool clean_up_;
  std::vector<int32_t> ids_;
  size_t emitted_bytes_ = 0;
};

}  // namespace ballast::tokenizer
