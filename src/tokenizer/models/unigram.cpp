// Unigram model (see unigram.h).
#include "tokenizer/models/unigram.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

UnigramModel::UnigramModel(std::vector<std::pair<std::string, double>> pieces, std::optional<int32_t> unk_id,
                           bool byte_fallback, bool fuse_unk)
    : pieces_(std::move(pieces)), unk_id_(unk_id), byte_fallback_(byte_fallback), fuse_unk_(fuse_unk) {
  vocab_.reserve(pieces_.size());
  trie_.reserve(pieces_.size() * 4);
  min_score_ = pieces_.empty() ? 0 : pieces_[0].second;
  for (size_t id = 0; id < pieces_.size(); ++id) {
    const std::string& p = pieces_[id].first;
    if (vocab_.get(p)) continue;  // first id wins
    vocab_.set(p, int32_t(id));
    min_score_ = std::min(min_score_, pieces_[id].second);
    int32_t node = 0;
    for (size_t k = 0; k < p.size(); ++k) {
      unsigned char b = p[k];
      const MergeInfo* e = trie_.get(node, b);
      int32_t child;
      int32_t tok = e ? e->new_id : -1;
      if (e) child = e->rank;
      else child = n_nodes_++;
      if (k + 1 == p.size()) tok = int32_t(id);
      trie_.set(node, b, MergeInfo{child, tok});
      node = child;
    }
  }
}

Status UnigramModel::tokenize(std::string_view s, std::vector<int32_t>& out) const {
  if (s.empty()) return Status();
  struct Node {
    double score = 0;
    int32_t start = -1;
    int32_t id = -1;
  };
  const double unk_score = min_score_ - 10.0;
  std::vector<Node> best(s.size() + 1);
  best[0].start = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    double base = best[pos].score;
    size_t mblen = utf8_len((unsigned char)s[pos]);
    if (pos + mblen > s.size()) mblen = s.size() - pos;
    bool single = false;
    int32_t node = 0;
    for (size_t k = pos; k < s.size(); ++k) {
      const MergeInfo* e = trie_.get(node, (unsigned char)s[k]);
      if (!e) break;
      node = e->rank;
      if (e->new_id >= 0) {
        size_t end = k + 1;
        double cand = base + pieces_[e->new_id].second;
        Node& t = best[end];
        if (t.start < 0 || cand > t.score) {
          t.score = cand;
          t.start = int32_t(pos);
          t.id = e->new_id;
        }
        if (end - pos == mblen) single = true;
      }
    }
    if (!single) {
      if (!unk_id_) return error(ErrorCode::kFormatError, "Unigram model: text needs <unk> but the model has no unk_id");
      Node& t = best[pos + mblen];
      double cand = base + unk_score;
      if (t.start < 0 || cand > t.score) {
        t.score = cand;
        t.start = int32_t(pos);
        t.id = *unk_id_;
      }
    }
    pos += mblen;
  }
  // Backtrack into string pieces, fusing consecutive unknowns.
  std::vector<std::pair<size_t, size_t>> spans;  // reversed
  size_t end = s.size();
  size_t unk_end = 0;
  bool in_unk = false;
  while (end > 0) {
    const Node& n = best[end];
    size_t st = size_t(n.start);
    if (fuse_unk_ && unk_id_ && n.id == *unk_id_) {
      if (!in_unk) {
        unk_end = end;
        in_unk = true;
      }
    } else {
      if (in_unk) {
        spans.emplace_back(end, unk_end);
        in_unk = false;
      }
      spans.emplace_back(st, end);
    }
    end = st;
  }
  if (in_unk) spans.emplace_back(0, unk_end);
  std::reverse(spans.begin(), spans.end());
  char buf[8];
  for (auto [b, e] : spans) {
    std::string_view piece = s.substr(b, e - b);
    if (auto id = vocab_.get(piece)) {
      out.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      bool ok = true;
      for (unsigned char c : piece) {
        std::snprintf(buf, sizeof(buf), "<0x%02X>", c);
        auto id = vocab_.get(buf);
        if (!id) { ok = false; break; }
        bytes.push_back(*id);
      }
      if (ok) {
        out.insert(out.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (!unk_id_) return error(ErrorCode::kFormatError, "Unigram model: no unk_id for \"" + std::string(piece) + "\"");
    out.push_back(*unk_id_);
  }
  return Status();
}

}  // namespace ballast::tokenizer
