// Trie walks against stack sets: one level of scratch stack sets per trie depth.
#include "grammar/token_masker.h"

#include <algorithm>

namespace ballast::grammar {

namespace {

class Walker {
 public:
  Walker(const Grammar& g, const TokenTrie& t, bool local, std::vector<uint64_t>& bits,
         std::vector<uint32_t>* popouts)
      : g_(g), t_(t), local_(local), bits_(bits), popouts_(popouts) {}

  void mark(uint32_t node) {
    const auto& n = t_.nodes()[node];
    for (uint32_t k = n.tok_begin; k < n.tok_end; ++k) {
      const int32_t id = t_.tokens()[k];
      bits_[id >> 6] |= uint64_t(1) << (id & 63);
    }
  }

  // levels_[depth] holds the stacks at node.
  void walk(uint32_t node, size_t depth) {
    if (levels_.size() <= depth + 1) levels_.resize(depth + 2);
    // Bytes any stack can take here: skips most edges without touching stacks.
    ByteSet any;
    for (const Stack& s : levels_[depth])
      if (!s.empty()) any |= g_.sets[g_.elems[s.back()].value];
    if (any.none()) return;
    const auto& n = t_.nodes()[node];
    for (uint32_t e = n.edge_begin; e < n.edge_end; ++e) {
      const auto& edge = t_.edges()[e];
      if (!any.test(edge.byte)) continue;
      bool popped = false;
      advance(g_, levels_[depth], edge.byte, levels_[depth + 1], local_, &popped);
      if (popped) popouts_->push_back(edge.child);
      if (levels_[depth + 1].empty()) continue;
      mark(edge.child);
      walk(edge.child, depth + 1);
    }
  }

  std::vector<StackSet> levels_;

 private:
  const Grammar& g_;
  const TokenTrie& t_;
  bool local_;
  std::vector<uint64_t>& bits_;
  std::vector<uint32_t>* popouts_;
};

}  // namespace

TokenMasker::TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenTrie> trie)
    : g_(std::move(g)), trie_(std::move(trie)) {}

size_t TokenMasker::cached_configurations() const {
  std::lock_guard<std::mutex> lk(mu_);
  return cache_.size();
}

std::shared_ptr<const TokenMasker::Entry> TokenMasker::entry(const Stack& key) const {
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  auto e = std::make_shared<Entry>();
  e->accepted.assign((trie_->n_ids() + 63) / 64, 0);
  Walker w(*g_, *trie_, true, e->accepted, &e->popouts);
  w.levels_.resize(1);
  w.levels_[0].push_back(key);
  w.walk(0, 0);
  std::sort(e->popouts.begin(), e->popouts.end());
  e->popouts.erase(std::unique(e->popouts.begin(), e->popouts.end()), e->popouts.end());
  std::lock_guard<std::mutex> lk(mu_);
  return cache_.emplace(key, std::move(e)).first->second;
}

void TokenMasker::fill(const StackSet& stacks, std::vector<uint8_t>& mask) const {
  const size_t words = (trie_->n_ids() + 63) / 64;
  std::vector<uint64_t> bits(words, 0);
  for (const Stack& s : stacks) {
    if (s.empty()) continue;
    const size_t k = std::min(kTopDepth, s.size());
    Stack key(s.end() - k, s.end());
    auto e = entry(key);
    for (size_t w = 0; w < words; ++w) bits[w] |= e->accepted[w];
    if (e->popouts.empty()) continue;
    // The stack below the configuration continues what the configuration completed.
    StackSet parent;
    expand(*g_, Stack(s.begin(), s.end() - k), parent);
    dedupe(parent);
    Walker w(*g_, *trie_, false, bits, nullptr);
    for (uint32_t node : e->popouts) {
      w.mark(node);
      w.levels_.resize(1);
      w.levels_[0] = parent;
      w.walk(node, 0);
    }
  }
  mask.assign(trie_->n_ids(), 0);
  for (size_t w = 0; w < words; ++w) {
    uint64_t b = bits[w];
    while (b) {
      const int i = __builtin_ctzll(b);
      mask[w * 64 + i] = 1;
      b &= b - 1;
    }
  }
}

}  // namespace ballast::grammar
