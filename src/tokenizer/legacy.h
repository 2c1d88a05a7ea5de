// Loaders for tokenizers without tokenizer.json: GPT-2 vocab.json + merges.txt and
// SentencePiece tokenizer.model (parsed from its protobuf by hand).
#pragma once
#include <filesystem>

#include "tokenizer/components.h"
#include "tokenizer/tokenizer.h"

namespace ballast::tokenizer {

Result<std::string> read_file(const std::string& path);
Result<json> read_json(const std::string& path);
Result<json> read_optional_json(const std::filesystem::path& p);

Result<std::unique_ptr<Tokenizer>> load_gpt2_legacy(const std::string& dir, const json& cfg);
Result<std::unique_ptr<Tokenizer>> load_sentencepiece_model(const std::string& path, const json& cfg);

}  // namespace ballast::tokenizer
