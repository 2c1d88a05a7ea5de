// BPE model (HF semantics): byte-level or SentencePiece-style vocabularies, merges by
// rank (lowest first, leftmost on ties), byte_fallback, fuse_unk, ignore_merges,
// continuing_subword_prefix / end_of_word_suffix. A bounded word cache speeds up
// repeated words.
#pragma once
#include <mutex>
#include <unordered_map>

#include "tokenizer/components.h"
#include "tokenizer/vocab_map.h"

namespace ballast::tokenizer {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel : public Model {
 public:
  explicit BpeModel(BpeOptions opts) : opts_(std::move(opts)) {}
  void reserve(size_t n_vocab, size_t n_merges);
  void add_token(std::string_view token, int32_t id);
  void add_token(std::string&& token, int32_t id);
  // Merges must be added after the vocabulary, in rank order.
  Status add_merge(std::string_view a, std::string_view b);
  // Bulk add_merge, resolving ids on several threads. With `lenient`, merges whose
  // tokens are missing are skipped (GGUF) instead of failing.
  Status add_merges(const std::vector<std::pair<std::string, std::string>>& merges, bool lenient = false);
  void finalize();

  Status tokenize(std::string_view word, std::vector<int32_t>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.get(token); }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || (size_t)id >= id_to_tok_.size() || !has_id_[id]) return nullptr;
    return &id_to_tok_[id];
  }
  int32_t vocab_size() const override { return int32_t(id_to_tok_.size()); }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  BpeOptions opts_;
  StringIdMap vocab_;
  std::vector<std::string> id_to_tok_;
  std::vector<bool> has_id_;
  MergeMap merges_;
  int32_t n_merges_ = 0;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];
  int32_t ascii_ids_[128];  // ids of single ASCII chars (no prefix/suffix), -2 = not computed
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace ballast::tokenizer
