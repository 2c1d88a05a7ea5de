// Block manager: free list, tables, reference counts, and the prefix cache's use of them.
#include "engine/block_manager.h"

#include <algorithm>

namespace ballast::engine {

BlockManager::BlockManager(int64_t total_blocks, bool prefix_cache)
    : total_(total_blocks), refs_(total_blocks, 0), cache_on_(prefix_cache) {
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
    const int32_t b = take_block();
    refs_[b] = 1;
    t.push_back(b);
  }
  return Status();
}

int32_t BlockManager::take_block() {
  if (!free_.empty()) {
    const int32_t b = free_.back();
    free_.pop_back();
    return b;
  }
  return cache_.evict();  // free_blocks() counted it: never -1 here
}

void BlockManager::release(int32_t seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  // Named blocks park last block first, so they are evicted before the prefixes they extend.
  const auto& t = it->second;
  for (auto b = t.rbegin(); b != t.rend(); ++b)
    if (refs_[*b] == 1) cache_.park(*b);
  for (int32_t b : t)
    if (--refs_[b] == 0 && !cache_.parked(b)) free_.push_back(b);
  tables_.erase(it);
  named_.erase(seq);
}

Status BlockManager::share(int32_t seq, const std::vector<int32_t>& blocks) {
  auto& t = tables_[seq];
  if (!t.empty()) return error(ErrorCode::kInternal, "share: sequence already has blocks");
  for (int32_t b : blocks) {
    if (b < 0 || b >= total_ || (refs_[b] == 0 && !cache_.parked(b)))
      return error(ErrorCode::kInternal, "share: block not in use");
  }
  for (int32_t b : blocks) {
    if (refs_[b]++ == 0) cache_.unpark(b);
    t.push_back(b);
  }
  return Status();
}

std::vector<int32_t> BlockManager::match(std::span<const int32_t> tokens, int64_t max_blocks) const {
  if (!cache_on_) return {};
  return cache_.match(tokens, max_blocks);
}

int64_t BlockManager::parked_among(const std::vector<int32_t>& blocks) const {
  int64_t n = 0;
  for (int32_t b : blocks) n += cache_.parked(b) ? 1 : 0;
  return n;
}

void BlockManager::commit(int32_t seq, std::span<const int32_t> tokens, int64_t n_computed) {
  if (!cache_on_) return;
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  Named& nm = named_[seq];
  const int64_t full = std::min<int64_t>(std::min<int64_t>(n_computed, static_cast<int64_t>(tokens.size())) / kBlockTokens,
                                         static_cast<int64_t>(it->second.size()));
  for (; nm.blocks < full; ++nm.blocks) {
    auto blk = tokens.subspan(static_cast<size_t>(nm.blocks * kBlockTokens), kBlockTokens);
    const int32_t b = it->second[nm.blocks];
    // A block shared from the cache is already named; a duplicate of a named block (two
    // equal prompts prefilled at once) stays unnamed and is freed normally.
    if (cache_.key_of(b) == 0) cache_.insert(b, nm.key, blk);
    nm.key = PrefixCache::chain_key(nm.key, blk);
  }
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
