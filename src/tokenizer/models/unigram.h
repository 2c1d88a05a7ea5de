// Unigram (SentencePiece) model: Viterbi over a byte trie of the pieces; unknown
// characters score min_score - 10 and fuse; byte_fallback spells unknown pieces as <0xXX>.
#pragma once
#include "tokenizer/components.h"
#include "tokenizer/vocab_map.h"

namespace ballast::tokenizer {

class UnigramModel : public Model {
 public:
  UnigramModel(std::vector<std::pair<std::string, double>> pieces, std::optional<int32_t> unk_id, bool byte_fallback,
               bool fuse_unk = true);
  Status tokenize(std::string_view word, std::vector<int32_t>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.get(token); }
  const std::string* id_to_token(int32_t id) const override {
    return id >= 0 && (size_t)id < pieces_.size() ? &pieces_[id].first : nullptr;
  }
  int32_t vocab_size() const override { return int32_t(pieces_.size()); }

 private:
  std::vector<std::pair<std::string, double>> pieces_;
  StringIdMap vocab_;
  MergeMap trie_;  // (node, byte) -> {child node, token id ending here or -1}
  int32_t n_nodes_ = 1;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_, fuse_unk_;
  double min_score_ = 0;
};

}  // namespace ballast::tokenizer
