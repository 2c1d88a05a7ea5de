// WordPiece (greedy longest-match-first with "##" continuation) and WordLevel models.
#pragma once
#include "tokenizer/components.h"
#include "tokenizer/vocab_map.h"

namespace ballast::tokenizer {

class VocabModel : public Model {
 public:
  void add_token(std::string_view token, int32_t id);
  std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.get(token); }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || (size_t)id >= id_to_tok_.size() || !has_id_[id]) return nullptr;
    return &id_to_tok_[id];
  }
  int32_t vocab_size() const override { return int32_t(id_to_tok_.size()); }

 protected:
  StringIdMap vocab_;
  std::vector<std::string> id_to_tok_;
  std::vector<bool> has_id_;
};

class WordPieceModel : public VocabModel {
 public:
  WordPieceModel(std::string unk, std::string prefix, size_t max_chars)
      : unk_(std::move(unk)), prefix_(std::move(prefix)), max_chars_(max_chars) {}
  Status tokenize(std::string_view word, std::vector<int32_t>& out) const override;

 private:
  std::string unk_, prefix_;
  size_t max_chars_;
};

class WordLevelModel : public VocabModel {
 public:
  explicit WordLevelModel(std::string unk) : unk_(std::move(unk)) {}
  Status tokenize(std::string_view word, std::vector<int32_t>& out) const override;

 private:
  std::string unk_;
};

}  // namespace ballast::tokenizer
