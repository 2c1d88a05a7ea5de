// response_format / grammar parsing and the compiled-grammar cache (structured_output.h).
#include "server/structured_output.h"

#include "core/log.h"
#include "grammar/constraint.h"
#include "grammar/json_schema.h"

namespace ballast::server {

namespace {

using ojson = nlohmann::ordered_json;

MaybeError check_gbnf(const std::string& text, const char* param) {
  auto g = grammar::parse_gbnf(text);
  if (!g.ok()) return bad_request("'" + std::string(param) + "': " + g.status().message(), param, "invalid_parameter");
  return {};
}

MaybeError response_format(const ojson& rf, std::string& gbnf) {
  const char* param = "response_format";
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    return bad_request("'response_format' must be an object with a 'type'", param);
  const std::string type = rf["type"].get<std::string>();
  auto only = [&](std::set<std::string> keys) -> MaybeError {
    for (auto it = rf.begin(); it != rf.end(); ++it)
      if (!keys.count(it.key()))
        return bad_request("unsupported parameter 'response_format." + it.key() + "'", param, "unsupported_parameter");
    return {};
  };
  if (type == "text") return only({"type"});
  if (type == "json_object") {
    if (auto e = only({"type"})) return e;
    gbnf = grammar::json_object_gbnf();
    return {};
  }
  if (type != "json_schema")
    return bad_request("'response_format.type' must be text, json_object or json_schema; got '" + type + "'", param);
  if (auto e = only({"type", "json_schema"})) return e;
  auto js = rf.find("json_schema");
  if (js == rf.end() || !js->is_object())
    return bad_request("'response_format.json_schema' must be an object with a 'schema'", param);
  for (auto it = js->begin(); it != js->end(); ++it)
    if (it.key() != "name" && it.key() != "schema" && it.key() != "strict" && it.key() != "description")
      return bad_request("unsupported parameter 'response_format.json_schema." + it.key() + "'", param,
                         "unsupported_parameter");
  auto schema = js->find("schema");
  // OpenAI allows a missing schema: any JSON object then.
  if (schema == js->end() || schema->is_null()) {
    gbnf = grammar::json_object_gbnf();
    return {};
  }
  auto text = grammar::schema_to_gbnf(*schema);
  if (!text.ok())
    return bad_request("'response_format.json_schema.schema': " + text.status().message(), param,
                       text.status().code() == ErrorCode::kUnsupported ? "unsupported_parameter" : "invalid_parameter");
  if (auto e = check_gbnf(text.value(), param)) return e;
  gbnf = text.value();
  return {};
}

}  // namespace

MaybeError parse_structured_output(const ojson& body, std::string& gbnf, std::set<std::string>& allowed) {
  allowed.insert("response_format");
  allowed.insert("grammar");
  gbnf.clear();
  auto rf = body.find("response_format");
  auto gr = body.find("grammar");
  const bool has_rf = rf != body.end() && !rf->is_null();
  const bool has_gr = gr != body.end() && !gr->is_null();
  if (has_rf && has_gr && !(rf->is_object() && rf->value("type", "") == "text"))
    return bad_request("give either 'grammar' or 'response_format', not both", "grammar");
  if (has_gr) {
    if (!gr->is_string() || gr->get<std::string>().empty())
      return bad_request("'grammar' must be a non-empty GBNF string", "grammar");
    if (auto e = check_gbnf(gr->get<std::string>(), "grammar")) return e;
    gbnf = gr->get<std::string>();
    return {};
  }
  if (has_rf) return response_format(*rf, gbnf);
  return {};
}

MaybeError parse_structured_output(const nlohmann::json& body, std::string& gbnf, std::set<std::string>& allowed) {
  ojson sub = ojson::object();
  for (const char* k : {"response_format", "grammar"})
    if (auto it = body.find(k); it != body.end()) sub[k] = ojson::parse(it->dump());
  return parse_structured_output(sub, gbnf, allowed);
}

Result<engine::ConstraintFactory> GrammarCache::get(const std::string& gbnf, const tokenizer::Tokenizer& tok,
                                                    const std::shared_ptr<std::vector<uint8_t>>& valid) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!trie_) {
    const int32_t n = valid ? static_cast<int32_t>(valid->size()) : tok.size();
    BALLAST_ASSIGN_OR_RETURN(grammar::TokenVocab v, grammar::token_vocab(tok, n, valid.get()));
    trie_ = std::make_shared<grammar::TokenTrie>(v);
    log::info("grammar.vocabulary", "token trie for structured output: " + std::to_string(trie_->nodes().size()) +
                                        " nodes over " + std::to_string(n) + " ids");
  }
  auto it = map_.find(gbnf);
  if (it != map_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return grammar::constraint_factory(it->second.first);
  }
  BALLAST_ASSIGN_OR_RETURN(grammar::Grammar g, grammar::parse_gbnf(gbnf));
  auto masker = std::make_shared<grammar::TokenMasker>(std::make_shared<grammar::Grammar>(std::move(g)), trie_);
  lru_.push_front(gbnf);
  map_[gbnf] = {masker, lru_.begin()};
  if (map_.size() > kMax) {
    map_.erase(lru_.back());
    lru_.pop_back();
  }
  return grammar::constraint_factory(masker);
}

}  // namespace ballast::server
