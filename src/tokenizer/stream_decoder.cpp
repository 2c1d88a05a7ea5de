// StreamDecoder: re-decodes a short window of recent ids and emits only text that can
// no longer change. Text is held back while it ends in an incomplete UTF-8 sequence or
// in U+FFFD (a byte-fallback / byte-level token that may still be completed).
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace ballast::tokenizer {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(tok), skip_special_(skip_special) {}

namespace {
bool ends_with_replacement(std::string_view s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

Result<std::string> StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  BALLAST_ASSIGN_OR_RETURN(std::string text, tok_.decode(ids_, skip_special_));
  // Hold back an unfinished tail.
  size_t safe = text.size();
  if (ends_with_replacement(text)) return std::string();
  safe -= utf8_incomplete_tail(text);
  if (tok_.settings().clean_up_tokenization_spaces.value_or(false)) {
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
  BALLAST_ASSIGN_OR_RETURN(std::string text, tok_.decode(ids_, skip_special_));
  if (text.size() <= emitted_bytes_) return std::string();
  std::string delta = text.substr(emitted_bytes_);
  emitted_bytes_ = text.size();
  return delta;
}

}  // namespace ballast::tokenizer
