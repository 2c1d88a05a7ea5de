// Models that reproduce llama.cpp's own tokenizers for GGUF vocabularies:
// SPM (merge the adjacent pair whose concatenation is the highest-scoring token,
// leftmost on ties; <0xXX> byte fallback) and WPM (BERT: NFD, lowercase, punctuation
// split, greedy longest match with "▁" marking word starts).
#pragma once
#include "tokenizer/components.h"
#include "tokenizer/vocab_map.h"

namespace ballast::tokenizer {

class GgufVocabModel : public Model {
 public:
  GgufVocabModel(std::vector<std::string> tokens, std::vector<float> scores, int32_t unk_id);
  std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.get(token); }
  const std::string* id_to_token(int32_t id) const override {
    return id >= 0 && (size_t)id < tokens_.size() ? &tokens_[id] : nullptr;
  }
  int32_t vocab_size() const override { return int32_t(tokens_.size()); }

 protected:
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  StringIdMap vocab_;
  int32_t unk_id_;
  size_t max_len_ = 0;
};

class LlamaSpmModel : public GgufVocabModel {
 public:
  using GgufVocabModel::GgufVocabModel;
  Status tokenize(std::string_view text, std::vector<int32_t>& out) const override;
};

class LlamaWpmModel : public GgufVocabModel {
 public:
  using GgufVocabModel::GgufVocabModel;
  // `text` is a whole fragment; the model does its own pre-processing.
  Status tokenize(std::string_view text, std::vector<int32_t>& out) const override;
};

}  // namespace ballast::tokenizer
