// Token masks for a grammar over a vocabulary trie, with masks precomputed per stack-top
// configuration (the top kTopDepth positions of a matcher stack): which tokens that
// configuration accepts by itself, and the trie nodes where it completes (pops out) so the
// rest of the token must be checked against the stack below, at run time. Configurations
// recur (every character inside a JSON string has the same top), so most steps are an OR
// of cached bitsets plus a short walk. Shared by every sequence using the grammar;
// thread-safe.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "grammar/matcher.h"
#include "grammar/token_vocab.h"

namespace ballast::grammar {

class TokenMasker {
 public:
  static constexpr size_t kTopDepth = 4;
  TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenTrie> trie);

  // mask: (n_ids,) 1 = the token's bytes are a valid continuation of the stacks.
  void fill(const StackSet& stacks, std::vector<uint8_t>& mask) const;
  const Grammar& grammar() const { return *g_; }
  const TokenTrie& trie() const { return *trie_; }
  size_t cached_configurations() const;

 private:
  struct Entry {
    std::vector<uint64_t> accepted;   // bitset over ids
    std::vector<uint32_t> popouts;    // trie nodes where the configuration completes
  };
  std::shared_ptr<const Entry> entry(const Stack& key) const;
  std::shared_ptr<const Grammar> g_;
  std::shared_ptr<const TokenTrie> trie_;
  mutable std::mutex mu_;
  mutable std::map<Stack, std::shared_ptr<const Entry>> cache_;
};

}  // namespace ballast::grammar
