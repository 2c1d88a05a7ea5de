// Block manager: free list, tables, reference counts.
#include "engine/block_manager.h"

#include <algorithm>

namespace ballast::engine {

BlockManager::BlockManager(int64_t total_blocks) : total_(total_blocks), refs_(total_blocks, 0) {
  free_.reserve(total_blocks);
  for (int64_t b = total_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

Status BlockManager::reserve(int32_t seq, int64_t n_tokens) {
  auto& t = tables_[seq];
  const int64_t need = blocks_for(n_tokens) - static_cast<int64_t>(t.size());
  if (need <= 0) return Status();
  if (need > free_blocks())
    return error(ErrorCode::kResourceExhausted, "KV cache full: need " + std::to_string(need) + " more blocks, " +
                                                    std::to_string(free_blocks()) + " free of " + std::to_string(total_));
  for (int64_t i = 0; i < need; ++i) {
    const int32_t b = free_.back();
    free_.pop_back();
    refs_[b] = 1;
    t.push_back(b);
  }
  return Status();
}

void BlockManager::release(int32_t seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  for (int32_t b : it->second)
    if (--refs_[b] == 0) free_.push_back(b);
  tables_.erase(it);
}

Status BlockManager::share(int32_t seq, const std::vector<int32_t>& blocks) {
  auto& t = tables_[seq];
  if (!t.empty()) return error(ErrorCode::kInternal, "share: sequence already has blocks");
  for (int32_t b : blocks) {
    if (b < 0 || b >= total_ || refs_[b] == 0) return error(ErrorCode::kInternal, "share: block not in use");
  }
  for (int32_t b : blocks) {
    ++refs_[b];
    t.push_back(b);
  }
  return Status();
}

void BlockManager::fill_tables(const std::vector<int32_t>& seqs, backend::StepPlan& plan) const {
  plan.n_seqs = static_cast<int32_t>(seqs.size());
  plan.max_blocks = 0;
  for (int32_t s : seqs) plan.max_blocks = std::max<int32_t>(plan.max_blocks, static_cast<int32_t>(table(s).size()));
  plan.block_tables.assign(static_cast<size_t>(plan.n_seqs) * plan.max_blocks, -1);
  for (int32_t r = 0; r < plan.n_seqs; ++r) {
    const auto& t = table(seqs[r]);
    std::copy(t.begin(), t.end(), plan.block_tables.begin() + static_cast<size_t>(r) * plan.max_blocks);
  }
}

const std::vector<int32_t>& BlockManager::table(int32_t seq) const {
  static const std::vector<int32_t> kEmpty;
  auto it = tables_.find(seq);
  return it == tables_.end() ? kEmpty : it->second;
}

}  // namespace ballast::engine
