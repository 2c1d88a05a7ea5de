// StreamDecoder: re-decodes a short window of recent ids and emits only text that can
// no longer change. Text is held back while it ends in an incomplete UTF-8 sequence or
// in U+FFFD (a byte-fallback / byte-level token that may still be completed).
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special, bool clean_up)
    : tok_(tok), skip_special_(skip_special), clean_up_(clean_up) {}

namespace {
bool ends_with_replacement(std::string_view s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

namespace {
// "<0xXX>" byte-fallback pieces: a run of them decodes as a unit (one U+FFFD per byte
// when the run is not valid UTF-8), so text from a trailing run is never final.
bool is_byte_piece(const Tokenizer& tok, int32_t id) {
  auto t = tok.id_to_token(id);
  return t && t->size() == 6 && t->compare(0, 3, "<0x") == 0 && (*t)[5] == '>';
}
}  // namespace

Result<std::string> StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  size_t stable = ids_.size();
  while (stable > 0) {
    int32_t last = ids_[stable - 1];
    bool skipped = skip_special_ && tok_.is_special(last);
    if (!skipped && !is_byte_piece(tok_, last)) break;
    --stable;
  }
  BALLAST_ASSIGN_OR_RETURN(std::string text,
                           tok_.decode_with(std::span<const int32_t>(ids_.data(), stable), skip_special_, clean_up_));
  // Hold back an unfinished tail.
  size_t safe = text.size();
  if (ends_with_replacement(text)) return std::string();
  safe -= utf8_incomplete_tail(text);
  if (clean_up_) {
    // " ." / " n't" / " 's" ... may still collapse: hold back a short tail after a space.
    size_t sp = text.rfind(' ', safe == 0 ? 0 : safe - 1);
    if (sp != std::string::npos && sp >= emitted_bytes_ && safe - sp <= 4) safe = sp;
  }
  if (safe <= emitted_bytes_) return std::string();
  // A decoder may rewrite earlier text (e.g. strip a leading space only at the start);
  // emit only when the emitted prefix is stable.
  std::string delta = text.substr(emitted_bytes_, safe - emitted_bytes_);
  emitted_bytes_ = safe;
  return delta;
}

Result<std::string> StreamDecoder::finish() {
  BALLAST_ASSIGN_OR_RETURN(std::string text, tok_.decode_with(ids_, skip_special_, clean_up_));
  if (text.size() <= emitted_bytes_) return std::string();
  std::string delta = text.substr(emitted_bytes_);
  emitted_bytes_ = text.size();
  return delta;
}

}  // namespace ballast::tokenizer
