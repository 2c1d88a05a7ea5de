// `ballast tokenize` / `ballast detokenize`: the tokenizer alone, over stdin.
#include <iostream>
#include <iterator>

#include "cli/options.h"
#include "io/gguf.h"

namespace ballast::cli {

namespace {

struct TokArgs {
  std::string model, tokenizer;
  bool no_add_special = false, split_special = false, skip_special = false, jsonl = false;
};

// --tokenizer wins when both are given, as in generate / inspect / serve (the model's
// weights are not needed to tokenize, so they are not loaded).
Result<std::unique_ptr<tokenizer::Tokenizer>> open_tokenizer(const TokArgs& a) {
  if (a.model.empty() && a.tokenizer.empty())
    return error(ErrorCode::kInvalidArgument, "give --model or --tokenizer (or both: the tokenizer is used)");
  return tokenizer::Tokenizer::load(a.tokenizer.empty() ? a.model : a.tokenizer);
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

int run_tokenize(const TokArgs& a) {
  auto tr = open_tokenizer(a);
  if (!tr.ok()) return fail(tr.status());
  auto& tok = *tr.value();
  tokenizer::EncodeOptions eo{!a.no_add_special, !a.split_special};
  auto encode = [&](const std::string& text) -> int {
    auto ids = tok.encode(text, eo);
    if (!ids.ok()) return fail(ids.status());
    std::cout << dump({{"ids", ids.value()}}) << "\n";
    return 0;
  };
  if (!a.jsonl) {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return encode(text);
  }
  std::string line;
  int64_t n = 0;
  while (std::getline(std::cin, line)) {
    ++n;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      return fail(error(ErrorCode::kInvalidArgument, "stdin line " + std::to_string(n) + ": invalid JSON: " + e.what()));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      return fail(error(ErrorCode::kInvalidArgument, "stdin line " + std::to_string(n) + ": expected {\"text\": \"...\"}"));
    if (int rc = encode(j["text"].get<std::string>())) return rc;
  }
  return 0;
}

int run_detokenize(const TokArgs& a) {
  auto tr = open_tokenizer(a);
  if (!tr.ok()) return fail(tr.status());
  auto& tok = *tr.value();
  auto decode = [&](const std::string& src, const std::string& where) -> int {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(src);
    } catch (const std::exception& e) {
      return fail(error(ErrorCode::kInvalidArgument, where + ": invalid JSON: " + e.what()));
    }
    if (!j.is_object() || !j.contains("ids") || !j["ids"].is_array())
      return fail(error(ErrorCode::kInvalidArgument, where + ": expected {\"ids\": [...]}"));
    std::vector<int32_t> ids;
    for (size_t i = 0; i < j["ids"].size(); ++i) {
      const auto& v = j["ids"][i];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok.size())
        return fail(error(ErrorCode::kInvalidTokenId, "invalid_token_id: ids[" + std::to_string(i) + "] = " + v.dump() +
                                                          " is not a token id of this tokenizer [0, " +
                                                          std::to_string(tok.size()) + ")"));
      ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    auto text = tok.decode(ids, a.skip_special);
    if (!text.ok()) return fail(text.status());
    std::cout << dump({{"text", text.value()}}) << "\n";
    return 0;
  };
  if (!a.jsonl) {
    std::string src((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return decode(src, "stdin");
  }
  std::string line;
  int64_t n = 0;
  while (std::getline(std::cin, line)) {
    ++n;
    if (line.empty()) continue;
    if (int rc = decode(line, "stdin line " + std::to_string(n))) return rc;
  }
  return 0;
}

}  // namespace

void add_tokenize(CLI::App& app, Options& o) {
  auto* a = keep(std::make_shared<TokArgs>());
  auto* t = app.add_subcommand("tokenize", "text on stdin -> {\"ids\": [...]}");
  t->add_option("--model", a->model, "HF model directory or .gguf file");
  t->add_option("--tokenizer", a->tokenizer,
                "tokenizer.json, a directory with tokenizer files, or a .gguf (used instead of --model's)");
  t->add_flag("--no-add-special", a->no_add_special, "do not add BOS/EOS etc.");
  t->add_flag("--split-special", a->split_special, "tokenize special-token literals as plain text");
  t->add_flag("--jsonl", a->jsonl, "one {\"text\": ...} per stdin line, one {\"ids\": ...} per output line");
  on_run(t, [a] { return run_tokenize(*a); });

  auto* b = keep(std::make_shared<TokArgs>());
  auto* d = app.add_subcommand("detokenize", "{\"ids\": [...]} on stdin -> {\"text\": \"...\"}");
  d->add_option("--model", b->model, "HF model directory or .gguf file");
  d->add_option("--tokenizer", b->tokenizer,
                "tokenizer.json, a directory with tokenizer files, or a .gguf (used instead of --model's)");
  d->add_flag("--skip-special", b->skip_special, "drop special tokens");
  d->add_flag("--jsonl", b->jsonl, "one {\"ids\": ...} per stdin line");
  on_run(d, [b] { return run_detokenize(*b); });
}

}  // namespace ballast::cli
