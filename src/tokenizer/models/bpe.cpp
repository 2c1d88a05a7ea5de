// BPE model (see bpe.h).
#include "tokenizer/models/bpe.h"

#include <queue>
#include <thread>

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {
namespace {
constexpr size_t kMaxCachedWord = 256;
constexpr size_t kMaxCacheEntries = 200000;
constexpr size_t kScanLimit = 64;  // words with more symbols use the heap merge

struct Sym {
  int32_t id;
  int32_t prev, next;
  uint32_t len;
};
}  // namespace

void BpeModel::reserve(size_t n_vocab, size_t n_merges) {
  vocab_.reserve(n_vocab);
  merges_.reserve(n_merges);
  id_to_tok_.reserve(n_vocab);
}

void BpeModel::add_token(std::string_view token, int32_t id) {
  if (id < 0) return;
  vocab_.set(token, id);
  if ((size_t)id >= id_to_tok_.size()) {
    id_to_tok_.resize(id + 1);
    has_id_.resize(id + 1, false);
  }
  id_to_tok_[id].assign(token);
  has_id_[id] = true;
}

void BpeModel::add_token(std::string&& token, int32_t id) {
  if (id < 0) return;
  vocab_.set(token, id);
  if ((size_t)id >= id_to_tok_.size()) {
    id_to_tok_.resize(id + 1);
    has_id_.resize(id + 1, false);
  }
  id_to_tok_[id] = std::move(token);
  has_id_[id] = true;
}

Status BpeModel::add_merge(std::string_view a, std::string_view b) {
  auto ia = vocab_.get(a);
  auto ib = vocab_.get(b);
  if (!ia || !ib)
    return error(ErrorCode::kFormatError, "BPE merge \"" + std::string(a) + " " + std::string(b) +
                                              "\": token \"" + std::string(ia ? b : a) + "\" is not in the vocabulary");
  size_t plen = opts_.continuing_subword_prefix.size();
  std::string merged(a);
  merged.append(b.substr(std::min(plen, b.size())));
  auto inew = vocab_.get(merged);
  if (!inew)
    return error(ErrorCode::kFormatError, "BPE merge \"" + std::string(a) + " " + std::string(b) + "\": result \"" +
                                              merged + "\" is not in the vocabulary");
  merges_.set(*ia, *ib, MergeInfo{n_merges_++, *inew});
  return Status();
}

Status BpeModel::add_merges(const std::vector<std::pair<std::string, std::string>>& merges, bool lenient) {
  const size_t n = merges.size();
  std::vector<MergeInfo> resolved(n);
  std::vector<int32_t> left(n);
  const size_t plen = opts_.continuing_subword_prefix.size();
  auto work = [&](size_t begin, size_t end) {
    std::string buf;
    for (size_t i = begin; i < end; ++i) {
      const auto& [a, b] = merges[i];
      auto ia = vocab_.get(a), ib = vocab_.get(b);
      buf.assign(a);
      buf.append(std::string_view(b).substr(std::min(plen, b.size())));
      auto inew = vocab_.get(buf);
      if (!ia || !ib || !inew) {
        left[i] = -1;
        continue;
      }
      left[i] = *ia;
      resolved[i] = MergeInfo{*ib, *inew};  // rank field holds b's id until insertion
    }
  };
  size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), 8);
  if (n < 20000) threads = 1;
  std::vector<std::thread> pool;
  size_t chunk = (n + threads - 1) / threads;
  for (size_t t = 1; t < threads; ++t)
    pool.emplace_back(work, std::min(n, t * chunk), std::min(n, (t + 1) * chunk));
  work(0, std::min(n, chunk));
  for (auto& th : pool) th.join();
  merges_.reserve(merges_.size() + n);
  for (size_t i = 0; i < n; ++i) {
    if (left[i] < 0) {
      if (lenient) continue;
      BALLAST_RETURN_IF_ERROR(add_merge(merges[i].first, merges[i].second));  // produces the error
      continue;
    }
    merges_.set(left[i], resolved[i].rank, MergeInfo{n_merges_++, resolved[i].new_id});
  }
  return Status();
}

void BpeModel::finalize() {
  unk_id_ = -1;
  if (opts_.unk_token) {
    if (auto id = vocab_.get(*opts_.unk_token)) unk_id_ = *id;
  }
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    auto id = vocab_.get(buf);
    byte_ids_[b] = id ? *id : -1;
  }
  for (int c = 0; c < 128; ++c) {
    char s[1] = {char(c)};
    auto id = vocab_.get(std::string_view(s, 1));
    ascii_ids_[c] = id ? *id : -1;
  }
}

Status BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return Status();
  if (opts_.ignore_merges) {
    if (auto id = vocab_.get(word)) {
      out.push_back(*id);
      return Status();
    }
  }
  bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return Status();
    }
  }
  size_t start = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + start, out.end()));
  }
  return Status();
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<Sym> syms;
  syms.clear();
  const bool affixes = !opts_.continuing_subword_prefix.empty() || !opts_.end_of_word_suffix.empty();
  int32_t unk_pending = -1;
  uint32_t unk_len = 0;
  auto push = [&](int32_t id, uint32_t len) { syms.push_back(Sym{id, 0, 0, len}); };
  std::string s;
  size_t i = 0;
  while (i < word.size()) {
    unsigned char c = word[i];
    size_t n = utf8_len(c);
    if (i + n > word.size()) n = word.size() - i;
    std::optional<int32_t> id;
    std::string_view piece = word.substr(i, n);
    if (!affixes) {
      if (c < 0x80) {
        if (ascii_ids_[c] >= 0) id = ascii_ids_[c];
      } else {
        id = vocab_.get(piece);
      }
    } else {
      s.clear();
      if (i != 0) s += opts_.continuing_subword_prefix;
      s += piece;
      if (i + n == word.size()) s += opts_.end_of_word_suffix;
      piece = s;
      id = vocab_.get(piece);
    }
    if (id) {
      if (unk_pending >= 0) {
        push(unk_pending, unk_len);
        unk_pending = -1;
      }
      push(*id, uint32_t(n));
    } else {
      bool done = false;
      if (opts_.byte_fallback) {
        bool all = true;
        for (unsigned char b : piece)
          if (byte_ids_[b] < 0) all = false;
        if (all) {
          for (unsigned char b : piece) push(byte_ids_[b], 1);
          done = true;
        }
      }
      if (!done && unk_id_ >= 0) {
        if (unk_pending >= 0 && opts_.fuse_unk) {
          unk_len += uint32_t(n);
        } else {
          if (unk_pending >= 0) push(unk_pending, unk_len);
          unk_pending = unk_id_;
          unk_len = uint32_t(n);
        }
      }
    }
    i += n;
  }
  if (unk_pending >= 0) push(unk_pending, unk_len);
  size_t m = syms.size();
  if (m == 0) return;
  if (m == 1) {
    out.push_back(syms[0].id);
    return;
  }
  if (m <= kScanLimit) {
    // Scan: keep the rank of each adjacent pair; merge the lowest (leftmost on ties).
    thread_local std::vector<int32_t> ids, ranks, news;
    ids.resize(m);
    ranks.resize(m - 1);
    news.resize(m - 1);
    for (size_t k = 0; k < m; ++k) ids[k] = syms[k].id;
    auto rank_at = [&](size_t k) {
      const MergeInfo* mi = merges_.get(ids[k], ids[k + 1]);
      ranks[k] = mi ? mi->rank : INT32_MAX;
      news[k] = mi ? mi->new_id : -1;
    };
    for (size_t k = 0; k + 1 < m; ++k) rank_at(k);
    size_t len = m;
    while (len > 1) {
      size_t best = 0;
      int32_t br = ranks[0];
      for (size_t k = 1; k + 1 < len; ++k)
        if (ranks[k] < br) { br = ranks[k]; best = k; }
      if (br == INT32_MAX) break;
      ids[best] = news[best];
      ids.erase(ids.begin() + best + 1);
      ranks.erase(ranks.begin() + best);
      news.erase(news.begin() + best);
      --len;
      if (best + 1 < len) rank_at(best);
      if (best > 0) rank_at(best - 1);
    }
    out.insert(out.end(), ids.begin(), ids.begin() + len);
    return;
  }
  // Heap merge (HF's algorithm) for long words.
  for (size_t k = 0; k < m; ++k) {
    syms[k].prev = int32_t(k) - 1;
    syms[k].next = k + 1 < m ? int32_t(k + 1) : -1;
  }
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  for (size_t k = 0; k + 1 < m; ++k)
    if (const MergeInfo* mi = merges_.get(syms[k].id, syms[k + 1].id)) heap.push({mi->rank, int32_t(k), mi->new_id});
  while (!heap.empty()) {
    Cand top = heap.top();
    heap.pop();
    Sym& left = syms[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    Sym& right = syms[left.next];
    const MergeInfo* mi = merges_.get(left.id, right.id);
    if (!mi || mi->new_id != top.new_id) continue;
    left.id = top.new_id;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = top.pos;
    if (left.prev >= 0)
      if (const MergeInfo* p = merges_.get(syms[left.prev].id, left.id)) heap.push({p->rank, left.prev, p->new_id});
    if (left.next >= 0)
      if (const MergeInfo* p = merges_.get(left.id, syms[left.next].id)) heap.push({p->rank, top.pos, p->new_id});
  }
  for (int32_t k = 0; k >= 0; k = syms[k].next) out.push_back(syms[k].id);
}

}  // namespace ballast::tokenizer
