// Prefix-cache index: chain keys, lookup with verification, LRU of parked blocks.
#include "engine/prefix_cache.h"

#include <algorithm>

namespace ballast::engine {

namespace {

uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t PrefixCache::chain_key(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix64(parent ^ 0x5bd1e9955bd1e995ull);
  for (int32_t t : tokens) h = mix64(h ^ static_cast<uint32_t>(t));
  return h == 0 ? 1 : h;  // 0 means "no parent"
}

std::vector<int32_t> PrefixCache::match(std::span<const int32_t> tokens, int64_t max_blocks) const {
  std::vector<int32_t> out;
  uint64_t parent = 0;
  const int64_t full = std::min<int64_t>(static_cast<int64_t>(tokens.size()) / kPrefixBlockTokens, max_blocks);
  for (int64_t i = 0; i < full; ++i) {
    auto blk = tokens.subspan(static_cast<size_t>(i * kPrefixBlockTokens), kPrefixBlockTokens);
    const uint64_t key = chain_key(parent, blk);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) break;
    const Entry& e = entries_.at(it->second);
    // A 64-bit collision must not hand out another prompt's K/V: compare the contents.
    if (e.parent != parent || !std::equal(blk.begin(), blk.end(), e.tokens.begin())) break;
    out.push_back(it->second);
    parent = key;
  }
  return out;
}

bool PrefixCache::insert(int32_t block, uint64_t parent, std::span<const int32_t> tokens) {
  if (tokens.size() != static_cast<size_t>(kPrefixBlockTokens) || entries_.count(block)) return false;
  const uint64_t key = chain_key(parent, tokens);
  if (by_key_.count(key)) return false;
  Entry e;
  e.key = key;
  e.parent = parent;
  std::copy(tokens.begin(), tokens.end(), e.tokens.begin());
  entries_.emplace(block, e);
  by_key_.emplace(key, block);
  return true;
}

uint64_t PrefixCache::key_of(int32_t block) const {
  auto it = entries_.find(block);
  return it == entries_.end() ? 0 : it->second.key;
}

bool PrefixCache::park(int32_t block) {
  if (!entries_.count(block) || pos_.count(block)) return false;
  lru_.push_back(block);
  pos_[block] = std::prev(lru_.end());
  return true;
}

void PrefixCache::unpark(int32_t block) {
  auto it = pos_.find(block);
  if (it == pos_.end()) return;
  lru_.erase(it->second);
  pos_.erase(it);
}

int32_t PrefixCache::evict() {
  if (lru_.empty()) return -1;
  const int32_t b = lru_.front();
  lru_.pop_front();
  pos_.erase(b);
  auto e = entries_.find(b);
  if (e != entries_.end()) {
    by_key_.erase(e->second.key);
    entries_.erase(e);
  }
  return b;
}

}  // namespace ballast::engine
