// Token bytes from the tokenizer's own pieces and decoder. Byte-level BPE pieces map
// character by character through the GPT-2 byte table; "<0xHH>" pieces are that byte;
// other pieces are decoded after an anchor token and the anchor's text removed, so
// decoders that treat the first token specially (Metaspace's leading space) do not change
// what a token means in the middle of a reply.
#include "grammar/token_vocab.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace ballast::grammar {

namespace {

bool byte_piece(const std::string& t, uint8_t& out) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return false;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int h = hex(t[3]), l = hex(t[4]);
  if (h < 0 || l < 0) return false;
  out = static_cast<uint8_t>(h * 16 + l);
  return true;
}

// The piece through the byte-level table, or false when a character is not in it.
bool byte_level(const std::string& piece, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < piece.size()) {
    char32_t cp;
    const int n = tokenizer::utf8_decode(piece, i, &cp);
    const int b = tokenizer::char_to_byte(cp);
    if (n <= 0 || b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += n;
  }
  return true;
}

}  // namespace

Result<TokenVocab> token_vocab(const tokenizer::Tokenizer& tok, int32_t n_ids, const std::vector<uint8_t>* valid) {
  TokenVocab v;
  v.bytes.assign(n_ids, {});
  // Byte-level vocabularies spell a space as "Ġ"; detect by the decoder's own answer.
  bool is_byte_level = false;
  if (auto sp = tok.token_to_id("\xC4\xA0"); sp) {  // "Ġ"
    std::vector<int32_t> one{*sp};
    auto d = tok.decode(one, false);
    is_byte_level = d.ok() && d.value() == " ";
  }
  // The anchor for the decode-difference method: a plain letter token.
  std::optional<int32_t> anchor = tok.token_to_id("a");
  std::string anchor_text;
  if (anchor) {
    std::vector<int32_t> one{*anchor};
    auto d = tok.decode(one, false);
    if (d.ok()) anchor_text = d.value();
    else anchor.reset();
  }
  std::string buf;
  for (int32_t id = 0; id < n_ids && id < tok.size(); ++id) {
    if (valid && (id >= static_cast<int32_t>(valid->size()) || !(*valid)[id])) continue;
    if (tok.is_special(id)) continue;
    auto piece = tok.id_to_token(id);
    if (!piece || piece->empty()) continue;
    uint8_t b;
    if (byte_piece(*piece, b)) {
      v.bytes[id] = std::string(1, static_cast<char>(b));
      continue;
    }
    if (is_byte_level) {
      if (byte_level(*piece, buf)) v.bytes[id] = buf;
      continue;
    }
    std::vector<int32_t> ids;
    if (anchor) ids.push_back(*anchor);
    ids.push_back(id);
    auto d = tok.decode(ids, false);
    if (!d.ok()) continue;
    const std::string& text = d.value();
    if (text.size() < anchor_text.size() || text.compare(0, anchor_text.size(), anchor_text) != 0) continue;
    std::string t = text.substr(anchor_text.size());
    if (t.find("\xEF\xBF\xBD") != std::string::npos) continue;  // not text on its own
    v.bytes[id] = std::move(t);
  }
  return v;
}

TokenTrie::TokenTrie(const TokenVocab& v) : vocab_(v), n_ids_(static_cast<int32_t>(v.bytes.size())) {
  std::vector<int32_t> order;
  for (int32_t id = 0; id < n_ids_; ++id)
    if (!vocab_.bytes[id].empty()) order.push_back(id);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return vocab_.bytes[a] != vocab_.bytes[b] ? vocab_.bytes[a] < vocab_.bytes[b] : a < b;
  });
  build(order, 0, order.size(), 0);
}

// Node for the common prefix of order[lo, hi) up to depth; children contiguous in edges_.
uint32_t TokenTrie::build(const std::vector<int32_t>& order, size_t lo, size_t hi, size_t depth) {
  const uint32_t id = static_cast<uint32_t>(nodes_.size());
  nodes_.emplace_back();
  nodes_[id].tok_begin = static_cast<uint32_t>(tokens_.size());
  while (lo < hi && vocab_.bytes[order[lo]].size() == depth) tokens_.push_back(order[lo++]);
  nodes_[id].tok_end = static_cast<uint32_t>(tokens_.size());
  std::vector<std::pair<size_t, size_t>> groups;
  for (size_t i = lo; i < hi;) {
    size_t j = i;
    const char c = vocab_.bytes[order[i]][depth];
    while (j < hi && vocab_.bytes[order[j]][depth] == c) ++j;
    groups.emplace_back(i, j);
    i = j;
  }
  const uint32_t eb = static_cast<uint32_t>(edges_.size());
  for (auto& g : groups) edges_.push_back({static_cast<uint8_t>(vocab_.bytes[order[g.first]][depth]), 0});
  nodes_[id].edge_begin = eb;
  nodes_[id].edge_end = eb + static_cast<uint32_t>(groups.size());
  for (size_t k = 0; k < groups.size(); ++k) {
    const uint32_t child = build(order, groups[k].first, groups[k].second, depth + 1);
    edges_[eb + k].child = child;
  }
  return id;
}

}  // namespace ballast::grammar
