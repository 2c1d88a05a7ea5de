// WordPiece and WordLevel models (see wordpiece.h).
#include "tokenizer/models/wordpiece.h"

#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

void VocabModel::add_token(std::string_view token, int32_t id) {
  if (id < 0) return;
  vocab_.set(token, id);
  if ((size_t)id >= id_to_tok_.size()) {
    id_to_tok_.resize(id + 1);
    has_id_.resize(id + 1, false);
  }
  id_to_tok_[id].assign(token);
  has_id_[id] = true;
}

Status WordPieceModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  auto unk = [&]() -> Status {
    auto id = vocab_.get(unk_);
    if (!id) return error(ErrorCode::kFormatError, "WordPiece: unk_token \"" + unk_ + "\" is not in the vocabulary");
    out.push_back(*id);
    return Status();
  };
  size_t nchars = 0;
  for (unsigned char c : word)
    if ((c & 0xC0) != 0x80) ++nchars;
  if (nchars > max_chars_) return unk();
  std::vector<int32_t> sub;
  size_t start = 0;
  std::string buf;
  while (start < word.size()) {
    size_t end = word.size();
    std::optional<int32_t> found;
    while (start < end) {
      buf.clear();
      if (start > 0) buf += prefix_;
      buf.append(word.substr(start, end - start));
      if ((found = vocab_.get(buf))) break;
      // step back one character
      do { --end; } while (end > start && ((unsigned char)word[end] & 0xC0) == 0x80);
    }
    if (!found) return unk();
    sub.push_back(*found);
    start = end;
  }
  out.insert(out.end(), sub.begin(), sub.end());
  return Status();
}

Status WordLevelModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (auto id = vocab_.get(word)) {
    out.push_back(*id);
    return Status();
  }
  if (auto id = vocab_.get(unk_)) {
    out.push_back(*id);
    return Status();
  }
  return error(ErrorCode::kFormatError, "WordLevel: \"" + std::string(word) + "\" is unknown and unk_token \"" + unk_ +
                                            "\" is not in the vocabulary");
}

}  // namespace ballast::tokenizer
