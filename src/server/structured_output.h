// Structured output parameters: response_format (text, json_object, json_schema) and the
// GBNF `grammar` extension, turned into one GBNF text per request at parse time (a schema
// the compiler cannot handle is a 400 naming the keyword); and the server's cache of
// compiled grammars with their token masks.
#pragma once
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/token_constraint.h"
#include "grammar/token_masker.h"
#include "server/api_error.h"
#include "tokenizer/tokenizer.h"

namespace ballast::server {

// Reads response_format and grammar from body (adds both to allowed). Sets gbnf (empty:
// unconstrained).
MaybeError parse_structured_output(const nlohmann::ordered_json& body, std::string& gbnf, std::set<std::string>& allowed);
MaybeError parse_structured_output(const nlohmann::json& body, std::string& gbnf, std::set<std::string>& allowed);

// Compiled grammars by GBNF text (least recently used dropped past kMax), over one token
// trie of the served vocabulary built on first use. Thread-safe.
class GrammarCache {
 public:
  static constexpr size_t kMax = 32;
  Result<engine::ConstraintFactory> get(const std::string& gbnf, const tokenizer::Tokenizer& tok,
                                        const std::shared_ptr<std::vector<uint8_t>>& valid);

 private:
  std::mutex mu_;
  std::shared_ptr<const grammar::TokenTrie> trie_;
  std::list<std::string> lru_;
  std::map<std::string, std::pair<std::shared_ptr<const grammar::TokenMasker>, std::list<std::string>::iterator>> map_;
};

}  // namespace ballast::server
