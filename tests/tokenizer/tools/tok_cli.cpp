// Stand-alone tokenizer CLI with the same contract as `ballast tokenize|detokenize`
// (used for tokenizer development and benchmarks while the main binary is in flux),
// plus `bench`: encode a file N times and report MB/s, load time, peak RSS.
#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "tokenizer/tokenizer.h"

using namespace ballast;
using namespace ballast::tokenizer;

static std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tok_cli tokenize|detokenize|bench --tokenizer PATH [flags]\n";
    return 2;
  }
  std::string cmd = argv[1], path, file;
  bool no_add = false, split = false, skip = false, jsonl = false;
  int reps = 1;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--tokenizer" || a == "--model") && i + 1 < argc) path = argv[++i];
    else if (a == "--file" && i + 1 < argc) file = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::stoi(argv[++i]);
    else if (a == "--no-add-special") no_add = true;
    else if (a == "--split-special") split = true;
    else if (a == "--skip-special") skip = true;
    else if (a == "--jsonl") jsonl = true;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto tr = Tokenizer::load(path);
  auto t1 = std::chrono::steady_clock::now();
  if (!tr.ok()) {
    std::cerr << "error: " << tr.status().message() << "\n";
    return 1;
  }
  auto& tok = *tr.value();
  if (cmd == "bench") {
    std::ifstream f(file, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    // Encode line by line (as a server sees documents), like the HF side of the bench.
    std::vector<std::string_view> lines;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      lines.emplace_back(text.data() + pos, nl - pos + (nl < text.size() ? 1 : 0));
      pos = nl + 1;
    }
    size_t n_tokens = 0;
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
      auto a = std::chrono::steady_clock::now();
      n_tokens = 0;
      for (auto l : lines) n_tokens += tok.encode(l, EncodeOptions{false, true}).value().size();
      auto b = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double>(b - a).count());
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::cout << dump({{"load_s", std::chrono::duration<double>(t1 - t0).count()},
                       {"encode_s", best},
                       {"mb_per_s", text.size() / 1e6 / best},
                       {"tokens", n_tokens},
                       {"peak_rss_mb", ru.ru_maxrss / 1024.0}})
              << "\n";
    return 0;
  }
  if (cmd == "tokenize") {
    EncodeOptions eo{!no_add, !split};
    auto run = [&](const std::string& text) {
      auto ids = tok.encode(text, eo);
      if (!ids.ok()) {
        std::cerr << "error: " << ids.status().message() << "\n";
        return false;
      }
      std::cout << dump({{"ids", ids.value()}}) << "\n";
      return true;
    };
    if (!jsonl) {
      std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
      return run(text) ? 0 : 1;
    }
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      if (!run(j["text"].get<std::string>())) return 1;
    }
    return 0;
  }
  if (cmd == "detokenize") {
    auto run = [&](const std::string& src) {
      auto j = nlohmann::json::parse(src);
      std::vector<int32_t> ids = j["ids"].get<std::vector<int32_t>>();
      auto text = tok.decode(ids, skip);
      if (!text.ok()) {
        std::cerr << "error: " << text.status().message() << "\n";
        return false;
      }
      std::cout << dump({{"text", text.value()}}) << "\n";
      return true;
    };
    if (!jsonl) {
      std::string src((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
      return run(src) ? 0 : 1;
    }
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      if (!run(line)) return 1;
    }
    return 0;
  }
  std::cerr << "unknown command " << cmd << "\n";
  return 2;
}
