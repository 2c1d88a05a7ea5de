// Tokenizer::load: dispatch on what PATH is (tokenizer.json, a model directory, a
// SentencePiece .model, a .gguf file) and read the settings files beside it.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/gguf.h"
#include "tokenizer/legacy.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/tokenizer_json.h"

namespace ballast::tokenizer {

namespace fs = std::filesystem;

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return error(ErrorCode::kIoError, path + ": cannot open");
  std::string s;
  f.seekg(0, std::ios::end);
  auto n = f.tellg();
  if (n < 0) return error(ErrorCode::kIoError, path + ": cannot read");
  s.resize(size_t(n));
  f.seekg(0);
  f.read(s.data(), n);
  if (!f) return error(ErrorCode::kIoError, path + ": short read");
  return s;
}

Result<json> read_json(const std::string& path) {
  BALLAST_ASSIGN_OR_RETURN(std::string text, read_file(path));
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormatError, path + ": invalid JSON: " + e.what());
  }
}

// Optional JSON file beside the tokenizer: null when absent.
Result<json> read_optional_json(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return json();
  return read_json(p.string());
}

Result<std::unique_ptr<Tokenizer>> load_tokenizer_json_file(const std::string& path, const json& cfg);

static Result<std::unique_ptr<Tokenizer>> load_dir_or_file(const fs::path& p) {
  std::error_code ec;
  fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  BALLAST_ASSIGN_OR_RETURN(json cfg, read_optional_json(dir / "tokenizer_config.json"));
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(dir / "tokenizer.json", ec)) return load_tokenizer_json_file((dir / "tokenizer.json").string(), cfg);
    if (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec))
      return load_gpt2_legacy(dir.string(), cfg);
    if (fs::is_regular_file(dir / "tokenizer.model", ec)) return load_sentencepiece_model((dir / "tokenizer.model").string(), cfg);
    if (fs::is_regular_file(dir / "spiece.model", ec)) return load_sentencepiece_model((dir / "spiece.model").string(), cfg);
    return error(ErrorCode::kNotFound, p.string() + ": no tokenizer.json, vocab.json + merges.txt, tokenizer.model or "
                                                    "spiece.model in this directory");
  }
  std::string ext = p.extension().string();
  if (ext == ".model") return load_sentencepiece_model(p.string(), cfg);
  return load_tokenizer_json_file(p.string(), cfg);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (!fs::exists(p, ec)) return error(ErrorCode::kNotFound, path + ": no such file or directory");
  if (!fs::is_directory(p, ec) && p.extension() == ".gguf") {
    BALLAST_ASSIGN_OR_RETURN(auto gguf, io::GgufFile::open(path));
    return from_gguf(*gguf);
  }
  return load_dir_or_file(p);
}

}  // namespace ballast::tokenizer
