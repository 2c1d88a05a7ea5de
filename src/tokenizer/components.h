// Internal pipeline stages, one small interface per stage of the HF pipeline:
// normalizer -> pre-tokenizer -> model -> post-processor -> decoder. Each concrete type
// is chosen by the "type" field of its tokenizer.json object (see the make_* factories).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ballast::tokenizer {

using json = nlohmann::json;

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

// A pre-tokenized piece. at_start: the piece begins at offset 0 of the original input
// (Metaspace's prepend_scheme "first" looks at it).
struct Piece {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by its finer split. Empty pieces are dropped by the caller.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-tokenized word.
  virtual Status tokenize(std::string_view word, std::vector<int32_t>& out) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // nullptr for ids the model does not define.
  virtual const std::string* id_to_token(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;  // max id + 1
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Factories from tokenizer.json objects. `null` json yields nullptr (stage absent).
Result<std::unique_ptr<Normalizer>> make_normalizer(const json& j);
Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const json& j);
// token_to_id resolves "SpecialToken" ids for template processors.
Result<std::unique_ptr<PostProcessor>> make_post_processor(const json& j);
Result<std::unique_ptr<Decoder>> make_decoder(const json& j);

// Programmatic constructors used by the legacy / GGUF adapters.
std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> items);
std::unique_ptr<Normalizer> make_replace_normalizer(std::string pattern, std::string content);
std::unique_ptr<Normalizer> make_prepend_normalizer(std::string prefix);
std::unique_ptr<Normalizer> make_nfc_normalizer();
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);
// Sequence of regex Split(Isolated) stages followed by a ByteLevel(use_regex=false).
Result<std::unique_ptr<PreTokenizer>> make_regex_byte_level_pre_tokenizer(const std::vector<std::string>& regexes);
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> items);
std::unique_ptr<Decoder> make_byte_level_decoder();
std::unique_ptr<Decoder> make_sequence_decoder(std::vector<std::unique_ptr<Decoder>> items);
std::unique_ptr<Decoder> make_replace_decoder(std::string pattern, std::string content);
std::unique_ptr<Decoder> make_byte_fallback_decoder();
std::unique_ptr<Decoder> make_fuse_decoder();
std::unique_ptr<Decoder> make_strip_decoder(std::string content, size_t start, size_t stop);
// ids prepended / appended when add_special is set.
std::unique_ptr<PostProcessor> make_bos_eos_post_processor(std::vector<int32_t> prefix, std::vector<int32_t> suffix);

// transformers' clean_up_tokenization (" ." -> ".", " n't" -> "n't", ...).
std::string clean_up_tokenization(std::string s);

// Helpers for json fields with defaults.
inline std::string json_str(const json& j, const char* key, const std::string& def = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}
inline bool json_bool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : def;
}

}  // namespace ballast::tokenizer
