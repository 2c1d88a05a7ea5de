// The KV block manager: the one owner of KV blocks on every backend. Blocks of 16
// positions, a table per sequence, reference counts (so a prefix cache can share a block
// between sequences). Backends only hold the pool the ids index.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "backend/step.h"
#include "core/status.h"

namespace ballast::engine {

class BlockManager {
 public:
  static constexpr int64_t kBlockTokens = backend::kKvBlockTokens;
  explicit BlockManager(int64_t total_blocks = 0);

  // Makes room for positions [0, n_tokens) of seq. kResourceExhausted when the pool is full
  // (nothing is taken then).
  Status reserve(int32_t seq, int64_t n_tokens);
  // Drops the sequence's references; blocks nobody references return to the free list.
  void release(int32_t seq);
  // Adds a reference to `blocks` for seq (prefix sharing): they become its first blocks.
  Status share(int32_t seq, const std::vector<int32_t>& blocks);
  bool has(int32_t seq) const { return tables_.count(seq) != 0; }
  const std::vector<int32_t>& table(int32_t seq) const;
  int32_t refs(int32_t block) const { return refs_[block]; }
  // Sets plan.n_seqs, max_blocks and block_tables for the step's sequences, in row order
  // (row r of the tables is seqs[r], padded with -1).
  void fill_tables(const std::vector<int32_t>& seqs, backend::StepPlan& plan) const;

  int64_t total_blocks() const { return total_; }
  int64_t used_blocks() const { return total_ - static_cast<int64_t>(free_.size()); }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  static int64_t blocks_for(int64_t n_tokens) { return (n_tokens + kBlockTokens - 1) / kBlockTokens; }

 private:
  int64_t total_;
  std::vector<int32_t> free_;  // a stack: low ids first (CPU pages stay few)
  std::vector<int32_t> refs_;
  std::unordered_map<int32_t, std::vector<int32_t>> tables_;
};

}  // namespace ballast::engine
