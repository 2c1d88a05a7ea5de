// Token-mask cost on a real vocabulary: walks a JSON reply token by token through a
// grammar constraint and times fill_mask per step, with a cold and then a warm mask cache.
// Build (after the library):
//   g++ -std=c++20 -O3 -mavx2 -mfma -mf16c -Isrc bench/grammar_mask_bench.cpp build/libballast_lib.a \
//       $(pkg-config --libs libpcre2-8 libutf8proc sentencepiece) -lopenblas -lpthread -o build/grammar_mask_bench
//   build/grammar_mask_bench MODEL.gguf
#include <chrono>
#include <cstdio>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "tokenizer/tokenizer.h"

using namespace ballast;

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: grammar_mask_bench MODEL\n"), 2;
  auto tok = tokenizer::Tokenizer::load(argv[1]);
  if (!tok.ok()) return std::fprintf(stderr, "%s\n", tok.status().message().c_str()), 1;
  auto t0 = std::chrono::steady_clock::now();
  auto vocab = grammar::token_vocab(*tok.value(), tok.value()->size(), nullptr);
  auto trie = std::make_shared<grammar::TokenTrie>(vocab.value());
  auto t1 = std::chrono::steady_clock::now();
  std::printf("vocabulary: %d ids, %zu trie nodes, built in %.1f ms\n", trie->n_ids(), trie->nodes().size(),
              std::chrono::duration<double, std::milli>(t1 - t0).count());
  const char* schema = R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
    "tags":{"type":"array","items":{"type":"string"}},"address":{"type":"object","properties":{
    "city":{"type":"string"},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["city","zip"]}},
    "required":["name","age","tags","address"]})";
  const std::string reply =
      R"({"name": "Ada Lovelace, mathematician and writer", "age": 36, "tags": ["analytical engine", "poetry", "notes on Bernoulli numbers"], "address": {"city": "London", "zip": "12345"}})";
  for (auto [label, gbnf] : {std::pair<const char*, std::string>{"json_schema", grammar::schema_to_gbnf(nlohmann::ordered_json::parse(schema)).value()},
                             {"json_object", grammar::json_object_gbnf()}}) {
    auto g = grammar::parse_gbnf(gbnf);
    if (!g.ok()) return std::fprintf(stderr, "%s\n", g.status().message().c_str()), 1;
    auto masker = std::make_shared<grammar::TokenMasker>(std::make_shared<grammar::Grammar>(g.value()), trie);
    auto ids = tok.value()->encode(reply, {false, false}).value();
    for (const char* pass : {"cold", "warm"}) {
      grammar::GrammarConstraint c(masker);
      std::vector<uint8_t> mask;
      double total = 0, worst = 0;
      for (int32_t id : ids) {
        auto a = std::chrono::steady_clock::now();
        c.fill_mask(mask);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
        total += ms;
        worst = std::max(worst, ms);
        if (!mask[id] || !c.accept(id)) return std::fprintf(stderr, "token %d refused\n", id), 1;
      }
      std::printf("%s %s: %zu steps, mean %.3f ms/mask, worst %.2f ms, %zu cached configurations\n", label, pass,
                  ids.size(), total / ids.size(), worst, masker->cached_configurations());
    }
  }
  return 0;
}
