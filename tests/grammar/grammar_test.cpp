// Grammar engine: GBNF parser and matcher on exact strings, the JSON-schema compiler,
// regex patterns, and token masks against a brute-force check on a small vocabulary.
#include <gtest/gtest.h>

#include <random>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_masker.h"

namespace ballast::grammar {
namespace {

using json = nlohmann::ordered_json;

Grammar G(const std::string& text) {
  auto g = parse_gbnf(text);
  EXPECT_TRUE(g.ok()) << g.status().message() << "\n" << text;
  return g.ok() ? std::move(g).value() : Grammar{};
}

TEST(Gbnf, LiteralsAlternativesRepetition) {
  Grammar g = G(R"(root ::= "ab" ("c" | "d")+ x? # comment
x ::= [0-9]{2,3})");
  EXPECT_TRUE(matches(g, "abc"));
  EXPECT_TRUE(matches(g, "abdcd12"));
  EXPECT_TRUE(matches(g, "abd123"));
  EXPECT_FALSE(matches(g, "ab"));
  EXPECT_FALSE(matches(g, "abc1"));
  EXPECT_FALSE(matches(g, "abc1234"));
  EXPECT_FALSE(matches(g, "abx"));
}

TEST(Gbnf, ClassesEscapesAndUtf8) {
  Grammar g = G(R"(root ::= [^"\\]* "\"" "\x41" [\u00e9-\u00ea] .)");
  EXPECT_TRUE(matches(g, "hi\"A\xC3\xA9z"));
  EXPECT_TRUE(matches(g, "h\xE2\x82\xAC\"A\xC3\xAA\xF0\x9F\x98\x80"));  // euro sign, emoji as `.`
  EXPECT_FALSE(matches(g, "\\\"A\xC3\xA9z"));
  EXPECT_FALSE(matches(g, "\"A\xC3\xABz"));          // U+00EB outside the range
  EXPECT_FALSE(matches(g, "\"A\xC3\xA9\xC3"));       // truncated UTF-8 at the end
  EXPECT_FALSE(matches(g, "\"A\xC3\xA9\xED\xA0\x80"));  // a surrogate is not a character
}

TEST(Gbnf, NewlinesBetweenRulesAndRecursion) {
  Grammar g = G("root ::= list\nlist ::= \"[\" ( item (\",\" item)* )? \"]\"\nitem ::= [a-z]+ | list\n");
  EXPECT_TRUE(matches(g, "[]"));
  EXPECT_TRUE(matches(g, "[a,[b,[]],cd]"));
  EXPECT_FALSE(matches(g, "[a,]"));
  EXPECT_FALSE(matches(g, "[[a]"));
}

TEST(Gbnf, Errors) {
  auto e1 = parse_gbnf("root ::= foo");
  ASSERT_FALSE(e1.ok());
  EXPECT_NE(e1.status().message().find("'foo'"), std::string::npos) << e1.status().message();
  auto e2 = parse_gbnf("root ::= root \"a\" | \"b\"");
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.status().message().find("left-recursive"), std::string::npos);
  auto e3 = parse_gbnf("root ::= \"a");
  ASSERT_FALSE(e3.ok());
  EXPECT_NE(e3.status().message().find("line 1"), std::string::npos);
  EXPECT_FALSE(parse_gbnf("other ::= \"a\"").ok());  // no root
  EXPECT_FALSE(parse_gbnf("root ::= [b-a]").ok());
}

TEST(Matcher, AcceptingAndFinished) {
  Grammar g = G(R"(root ::= "a" "b"?)");
  Matcher m(g);
  EXPECT_FALSE(m.accepting());
  ASSERT_TRUE(m.accept_bytes("a"));
  EXPECT_TRUE(m.accepting());
  EXPECT_FALSE(m.finished());
  EXPECT_FALSE(m.accept_bytes("c"));
  ASSERT_TRUE(m.accept_bytes("b"));
  EXPECT_TRUE(m.finished());
  EXPECT_FALSE(m.accept_bytes("b"));
}

Grammar schema_grammar(const json& schema) {
  auto text = schema_to_gbnf(schema);
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? G(text.value()) : Grammar{};
}

TEST(JsonSchema, ObjectWithRequiredAndOptionalProperties) {
  Grammar g = schema_grammar(json::parse(R"({"type":"object","properties":{
      "name":{"type":"string"},"age":{"type":"integer","minimum":0},"tags":{"type":"array","items":{"type":"string"},"maxItems":2},
      "kind":{"enum":["a","b",3]}},"required":["name","kind"],"additionalProperties":false})"));
  EXPECT_TRUE(matches(g, R"({"name":"x","kind":"a"})"));
  EXPECT_TRUE(matches(g, R"({"name": "x\"y", "age": 42, "tags": ["p", "q"], "kind": 3})"));
  EXPECT_TRUE(matches(g, "{\n  \"name\": \"\\u00e9\",\n  \"kind\": \"b\"\n}"));
  EXPECT_FALSE(matches(g, R"({"kind":"a"})"));                       // required name missing
  EXPECT_FALSE(matches(g, R"({"name":"x","kind":"c"})"));            // not in enum
  EXPECT_FALSE(matches(g, R"({"name":"x","age":-1,"kind":"a"})"));   // minimum 0
  EXPECT_FALSE(matches(g, R"({"name":"x","age":1.5,"kind":"a"})"));  // integer
  EXPECT_FALSE(matches(g, R"({"name":"x","tags":["a","b","c"],"kind":"a"})"));
  EXPECT_FALSE(matches(g, R"({"name":"x","kind":"a","extra":1})"));  // additionalProperties
  EXPECT_FALSE(matches(g, R"({"name":"x",,"kind":"a"})"));
  EXPECT_FALSE(matches(g, R"({"name":"x","kind":"a"} )"));           // nothing after the value
}

TEST(JsonSchema, AllOptionalPropertiesAndNesting) {
  Grammar g = schema_grammar(json::parse(R"({"type":"object","properties":{
      "a":{"type":"boolean"},"b":{"type":"null"},"c":{"type":"object","properties":{"d":{"type":"number"}},"required":["d"]}}})"));
  EXPECT_TRUE(matches(g, "{}"));
  EXPECT_TRUE(matches(g, R"({"b":null})"));
  EXPECT_TRUE(matches(g, R"({"a":true,"c":{"d":-1.5e3}})"));
  EXPECT_TRUE(matches(g, R"({"c":{"d":0}})"));
  EXPECT_FALSE(matches(g, R"({"c":{}})"));
  EXPECT_FALSE(matches(g, R"({"b":null,"a":true})"));  // declaration order
  EXPECT_FALSE(matches(g, R"({"a":true,})"));
  EXPECT_FALSE(matches(g, R"({"c":{"d":01}})"));
}

TEST(JsonSchema, RefsAnyOfConstAndLengths) {
  Grammar g = schema_grammar(json::parse(R"({"$defs":{"node":{"type":"object","properties":{
      "v":{"anyOf":[{"type":"integer"},{"const":"none"}]},"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},
      "required":["v","next"]}},"$ref":"#/$defs/node"})"));
  EXPECT_TRUE(matches(g, R"({"v":1,"next":{"v":"none","next":null}})"));
  EXPECT_FALSE(matches(g, R"({"v":"x","next":null})"));
  Grammar s = schema_grammar(json::parse(R"({"type":"string","minLength":2,"maxLength":3})"));
  EXPECT_TRUE(matches(s, R"("ab")"));
  EXPECT_TRUE(matches(s, R"("a\nb")"));
  EXPECT_FALSE(matches(s, R"("a")"));
  EXPECT_FALSE(matches(s, R"("abcd")"));
  Grammar r = schema_grammar(json::parse(R"({"type":"integer","minimum":3,"maximum":12})"));
  EXPECT_TRUE(matches(r, "3"));
  EXPECT_TRUE(matches(r, "12"));
  EXPECT_FALSE(matches(r, "13"));
  EXPECT_FALSE(matches(r, "2"));
  Grammar d = schema_grammar(json::parse(R"({"type":"string","format":"date"})"));
  EXPECT_TRUE(matches(d, R"("2024-02-29")"));
  EXPECT_FALSE(matches(d, R"("2024-13-01")"));
}

TEST(JsonSchema, Patterns) {
  Grammar g = schema_grammar(json::parse(R"({"type":"string","pattern":"^[A-Z]{2}-\\d{3}(x|yz)?$"})"));
  EXPECT_TRUE(matches(g, R"("AB-123")"));
  EXPECT_TRUE(matches(g, R"("AB-123yz")"));
  EXPECT_FALSE(matches(g, R"("AB-12")"));
  EXPECT_FALSE(matches(g, R"("ab-123")"));
  Grammar u = schema_grammar(json::parse(R"({"type":"string","pattern":"a\"b"})"));  // unanchored
  EXPECT_TRUE(matches(u, R"("xxa\"byy")"));
  EXPECT_FALSE(matches(u, R"("xxab")"));
  auto bad = schema_to_gbnf(json::parse(R"({"type":"string","pattern":"(?=a)b"})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'pattern'"), std::string::npos);
}

TEST(JsonSchema, UnsupportedKeywordsAreNamed) {
  for (auto [schema, kw] : std::vector<std::pair<const char*, const char*>>{
           {R"({"type":"object","patternProperties":{}})", "patternProperties"},
           {R"({"type":"object","properties":{"a":{"type":"string","format":"email"}}})", "format"},
           {R"({"type":"array","prefixItems":[]})", "prefixItems"},
           {R"({"not":{"type":"string"}})", "not"},
           {R"({"allOf":[{"type":"string"},{"minLength":1}]})", "allOf"}}) {
    auto r = schema_to_gbnf(json::parse(schema));
    ASSERT_FALSE(r.ok()) << schema;
    EXPECT_NE(r.status().message().find(std::string("'") + kw + "'"), std::string::npos) << r.status().message();
  }
}

TEST(JsonSchema, JsonObject) {
  Grammar g = G(json_object_gbnf());
  EXPECT_TRUE(matches(g, R"({"a":[1,{"b":null}],"c":"d","e":true})"));
  EXPECT_TRUE(matches(g, "{}"));
  EXPECT_FALSE(matches(g, "[]"));
  EXPECT_FALSE(matches(g, R"({"a":})"));
  EXPECT_FALSE(matches(g, "{}   "));
}

// Brute force: a token is allowed iff its bytes are a valid continuation.
void check_masks(const Grammar& g, const std::vector<std::string>& vocab, const std::string& path) {
  TokenVocab v{vocab};
  auto gp = std::make_shared<Grammar>(g);
  auto masker = std::make_shared<TokenMasker>(gp, std::make_shared<TokenTrie>(v));
  GrammarConstraint c(masker);
  Matcher m(*gp);
  std::vector<uint8_t> mask;
  for (size_t pos = 0; pos <= path.size(); ++pos) {
    c.fill_mask(mask);
    ASSERT_EQ(mask.size(), vocab.size());
    for (size_t id = 0; id < vocab.size(); ++id) {
      Matcher t = m;
      const bool ok = !vocab[id].empty() && t.accept_bytes(vocab[id]);
      ASSERT_EQ(static_cast<bool>(mask[id]), ok) << "token '" << vocab[id] << "' after '" << path.substr(0, pos) << "'";
    }
    if (pos == path.size()) break;
    // Advance by one byte through a single-byte token.
    const std::string b(1, path[pos]);
    auto it = std::find(vocab.begin(), vocab.end(), b);
    ASSERT_NE(it, vocab.end());
    ASSERT_TRUE(c.accept(static_cast<int32_t>(it - vocab.begin()))) << path.substr(0, pos + 1);
    ASSERT_TRUE(m.accept_bytes(b));
  }
  EXPECT_TRUE(c.can_end());
}

std::vector<std::string> small_vocab() {
  std::vector<std::string> v;
  for (int c = 0x20; c < 0x7F; ++c) v.emplace_back(1, static_cast<char>(c));
  for (const char* t : {"\"", "\":", "\",", "\"}", "\"},", "{\"", "\": \"", "\": ", ", \"", "}", "}}", "]}", "[\"",
                        "\",\"", "true", "false", "null", "nul", "12", "3.5", "-0", "name", "age", "ag", "e\"", " ",
                        "\n", "\n  ", "  ", "é", "\xC3", "\xA9", "\\n", "\\\"", "\\u00", "tags", "\"]", "\"]}", ""})
    v.emplace_back(t);
  return v;
}

TEST(TokenMask, MatchesBruteForceOnSchema) {
  Grammar g = schema_grammar(json::parse(R"({"type":"object","properties":{
      "name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},
      "required":["name"]})"));
  check_masks(g, small_vocab(), R"({"name": "a\"b \u00e9", "age": 12, "tags": ["x", "y"]})");
  check_masks(g, small_vocab(), "{\n  \"name\":\"\"}");
}

TEST(TokenMask, MatchesBruteForceOnJsonObjectAndGbnf) {
  check_masks(G(json_object_gbnf()), small_vocab(), R"({"a": [1, {"b": null}], "c": "d\"}"})");
  check_masks(G(R"(root ::= ("ab" | "a" [0-9]+ ) ":" ( "x" root )?)"), small_vocab(), "ab:xa12:xab:");
}

}  // namespace
}  // namespace ballast::grammar
