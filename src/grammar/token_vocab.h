// Each token id's exact output bytes, for matching tokens against a grammar; and a byte
// trie over them. Special tokens, holes and invalid ids get no bytes (never allowed by a
// grammar: the engine admits stop ids itself when the grammar is complete).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace ballast::grammar {

struct TokenVocab {
  std::vector<std::string> bytes;  // (n_ids,) empty = not a text token
};

// valid: the audit's valid-id flags (null: all); n_ids: the logits row count.
Result<TokenVocab> token_vocab(const tokenizer::Tokenizer& tok, int32_t n_ids, const std::vector<uint8_t>* valid);

class TokenTrie {
 public:
  struct Node {
    uint32_t edge_begin = 0, edge_end = 0;  // into edges()
    uint32_t tok_begin = 0, tok_end = 0;    // into tokens(): ids whose bytes end here
  };
  struct Edge {
    uint8_t byte;
    uint32_t child;
  };
  explicit TokenTrie(const TokenVocab& v);
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Edge>& edges() const { return edges_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int32_t n_ids() const { return n_ids_; }
  const TokenVocab& vocab() const { return vocab_; }

 private:
  uint32_t build(const std::vector<int32_t>& order, size_t lo, size_t hi, size_t depth);
  TokenVocab vocab_;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::vector<int32_t> tokens_;
  int32_t n_ids_ = 0;
};

}  // namespace ballast::grammar
