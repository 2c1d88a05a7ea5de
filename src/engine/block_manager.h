// The KV block manager: the one owner of KV blocks on every backend. Blocks of 16
// positions, a table per sequence, reference counts (a block may be shared between
// sequences), and the prefix cache (prefix_cache.h): full blocks named by their token
// prefix outlive their sequences until the pool needs them. Backends only hold the pool
// the ids index.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/step.h"
#include "core/status.h"
#include "engine/prefix_cache.h"

namespace ballast::engine {

class BlockManager {
 public:
  static constexpr int64_t kBlockTokens = backend::kKvBlockTokens;
  static_assert(kBlockTokens == kPrefixBlockTokens);
  // prefix_cache: name full computed blocks and keep them after release (LRU eviction).
  explicit BlockManager(int64_t total_blocks = 0, bool prefix_cache = false);

  // Makes room for positions [0, n_tokens) of seq, from free blocks first, then by
  // evicting cached ones (least recently freed first). kResourceExhausted when the pool
  // is full (nothing is taken then).
  Status reserve(int32_t seq, int64_t n_tokens);
  // Drops the sequence's references; blocks nobody references return to the free list.
  void release(int32_t seq);
  // Adds a reference to `blocks` for seq (prefix sharing): they become its first blocks.
  // Blocks may be in use or parked in the prefix cache.
  Status share(int32_t seq, const std::vector<int32_t>& blocks);

  // Prefix cache. The cached blocks holding the longest run of full blocks of `tokens`
  // (at most max_blocks), in order; empty when the cache is off.
  std::vector<int32_t> match(std::span<const int32_t> tokens, int64_t max_blocks) const;
  // Of `blocks`, how many are parked (counted as free until shared again).
  int64_t parked_among(const std::vector<int32_t>& blocks) const;
  // seq's K/V now hold positions [0, n_computed) of `tokens`: names its newly completed
  // full blocks so later sequences can share them.
  void commit(int32_t seq, std::span<const int32_t> tokens, int64_t n_computed);
  bool prefix_cache() const { return cache_on_; }
  int64_t cached_blocks() const { return cache_.named(); }
  bool has(int32_t seq) const { return tables_.count(seq) != 0; }
  const std::vector<int32_t>& table(int32_t seq) const;
  int32_t refs(int32_t block) const { return refs_[block]; }
  // Sets plan.n_seqs, max_blocks and block_tables for the step's sequences, in row order
  // (row r of the tables is seqs[r], padded with -1).
  void fill_tables(const std::vector<int32_t>& seqs, backend::StepPlan& plan) const;

  int64_t total_blocks() const { return total_; }
  // Blocks some sequence references; parked cached blocks count as free (they are reused
  // or evicted on demand).
  int64_t used_blocks() const { return total_ - free_blocks(); }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()) + cache_.evictable(); }
  static int64_t blocks_for(int64_t n_tokens) { return (n_tokens + kBlockTokens - 1) / kBlockTokens; }

 private:
  int64_t total_;
  std::vector<int32_t> free_;  // a stack: low ids first (CPU pages stay few)
  std::vector<int32_t> refs_;
  std::unordered_map<int32_t, std::vector<int32_t>> tables_;
  bool cache_on_ = false;
  PrefixCache cache_;
  // Per sequence: how many of its leading blocks are named, and the last one's key.
  struct Named {
    int64_t blocks = 0;
    uint64_t key = 0;
  };
  std::unordered_map<int32_t, Named> named_;
  int32_t take_block();
};

}  // namespace ballast::engine
