// The prefix cache's index: full KV blocks named by a hash chain over their token
// prefix (block i's key = hash(key of block i-1, its 16 tokens)), so a block's key says
// "these K/V are positions [16i, 16i + 16) of exactly this token prefix". Blocks nobody
// references but whose key is known wait in an LRU list and are reused on a match or
// evicted (least recently freed first) when the pool needs room. Pure bookkeeping: the
// block manager owns reference counts and the free list; backends never see any of it.
#pragma once
#include <array>
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace ballast::engine {

constexpr int64_t kPrefixBlockTokens = 16;  // == backend::kKvBlockTokens (checked in block_manager.h)

class PrefixCache {
 public:
  using Tokens = std::array<int32_t, kPrefixBlockTokens>;

  // The chain key of a block holding `tokens` after the block keyed `parent` (0: the first block).
  static uint64_t chain_key(uint64_t parent, std::span<const int32_t> tokens);

  // The blocks holding the longest cached run of full blocks of `tokens` (at most
  // max_blocks of them), in order. Their keys are verified against the stored tokens.
  std::vector<int32_t> match(std::span<const int32_t> tokens, int64_t max_blocks) const;

  // Names `block` as the block after `parent` holding `tokens`; false (nothing changes)
  // when another block already holds that key or the block is already named.
  bool insert(int32_t block, uint64_t parent, std::span<const int32_t> tokens);
  // The key of a named block, or 0.
  uint64_t key_of(int32_t block) const;

  // Reference-count transitions of named blocks (unnamed blocks are ignored).
  // A named block nobody references becomes evictable (most recently freed last).
  bool park(int32_t block);
  // A parked block is referenced again (a match): it leaves the LRU list.
  void unpark(int32_t block);
  bool parked(int32_t block) const { return pos_.count(block) != 0; }
  // Takes the least recently freed parked block and forgets its key; -1 when none.
  int32_t evict();
  int64_t evictable() const { return static_cast<int64_t>(lru_.size()); }
  int64_t named() const { return static_cast<int64_t>(entries_.size()); }

 private:
  struct Entry {
    uint64_t key = 0, parent = 0;
    Tokens tokens{};
  };
  std::unordered_map<int32_t, Entry> entries_;    // block -> its key and contents
  std::unordered_map<uint64_t, int32_t> by_key_;  // key -> block
  std::list<int32_t> lru_;                        // parked blocks, least recently freed first
  std::unordered_map<int32_t, std::list<int32_t>::iterator> pos_;
};

}  // namespace ballast::engine
