// Server pieces without a model: stop-string matcher, request parsing, auth, metrics text.
#include <gtest/gtest.h>

#include <random>

#include "server/auth.h"
#include "server/metrics.h"
#include "server/json_body.h"
#include "server/openai_schema.h"
#include "server/stop_strings.h"

using namespace ballast::server;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// Feeds `text` in the given chunk sizes; returns (emitted text, matched).
std::pair<std::string, bool> feed(StopMatcher& m, const std::string& text, const std::vector<size_t>& cuts) {
  std::string out;
  size_t p = 0;
  bool matched = false;
  for (size_t c : cuts) {
    auto r = m.push(text.substr(p, c));
    out += r.text;
    matched |= r.matched;
    p += c;
  }
  if (p < text.size()) {
    auto r = m.push(text.substr(p));
    out += r.text;
    matched |= r.matched;
  }
  if (!matched) out += m.flush();
  return {out, matched};
}

}  // namespace

TEST(StopMatcher, NoStopsPassesThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc").text, "abc");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, MatchWithinOneChunk) {
  StopMatcher m({"END"});
  auto r = m.push("helloENDworld");
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.text, "hello");
  EXPECT_EQ(m.push("more").text, "");
  EXPECT_EQ(m.matched_stop(), "END");
}

TEST(StopMatcher, HoldsPartialMatchAcrossChunks) {
  StopMatcher m({"</answer>"});
  auto a = m.push("42 </an");
  EXPECT_EQ(a.text, "42 ");  // "</an" may be the stop: held back
  EXPECT_FALSE(a.matched);
  EXPECT_EQ(m.held(), 4u);
  auto b = m.push("swer> tail");
  EXPECT_TRUE(b.matched);
  EXPECT_EQ(b.text, "");
}

TEST(StopMatcher, ReleasesFalseStart) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("ST").text, "");
  EXPECT_EQ(m.push("AR").text, "STAR");
  EXPECT_EQ(m.push("S").text, "");
  EXPECT_EQ(m.flush(), "S");  // end of generation: held text released
}

TEST(StopMatcher, EarliestOfSeveralStops) {
  StopMatcher m({"world", "lo w"});
  auto r = m.push("hello world");
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.text, "hel");
}

TEST(StopMatcher, OverlappingPrefixes) {
  StopMatcher m({"aab"});
  std::string out;
  for (char c : std::string("aaaab")) out += m.push(std::string(1, c)).text;
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(out, "aa");
}

TEST(StopMatcher, MultiByteStopSplitInsideCharacters) {
  StopMatcher m({"。終"});
  std::string text = "答え。終わり";
  // Cut at every byte: the matcher must still find the stop and emit only "答え".
  std::vector<size_t> ones(text.size(), 1);
  auto [out, matched] = feed(m, text, ones);
  EXPECT_TRUE(matched);
  EXPECT_EQ(out, "答え");
}

TEST(StopMatcher, RandomChunkingAgreesWithWholeText) {
  std::mt19937 rng(7);
  const std::vector<std::string> stops{"\n\n", "User:", "abcab"};
  const std::string alphabet = "abcUser:\n x";
  for (int iter = 0; iter < 2000; ++iter) {
    std::string text;
    int len = rng() % 40;
    for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    // Reference: earliest occurrence of any stop.
    size_t best = std::string::npos;
    for (const auto& s : stops) best = std::min(best, text.find(s));
    std::string want = best == std::string::npos ? text : text.substr(0, best);
    std::vector<size_t> cuts;
    for (size_t p = 0; p < text.size();) {
      size_t c = 1 + rng() % 5;
      cuts.push_back(c);
      p += c;
    }
    StopMatcher m(stops);
    auto [out, matched] = feed(m, text, cuts);
    EXPECT_EQ(out, want) << "text: " << text;
    EXPECT_EQ(matched, best != std::string::npos);
  }
}

TEST(Auth, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_FALSE(constant_time_equal("secreT", "secret"));
  EXPECT_FALSE(constant_time_equal("secret1", "secret"));
  EXPECT_FALSE(constant_time_equal("", "secret"));
}

TEST(Auth, BearerHeader) {
  std::string ok = "Bearer k1", lower = "bearer k1", bad = "Bearer k2", basic = "Basic k1";
  EXPECT_TRUE(authorized("", nullptr));
  EXPECT_FALSE(authorized("k1", nullptr));
  EXPECT_TRUE(authorized("k1", &ok));
  EXPECT_TRUE(authorized("k1", &lower));
  EXPECT_FALSE(authorized("k1", &bad));
  EXPECT_FALSE(authorized("k1", &basic));
}

TEST(CompletionSchema, PromptForms) {
  CompletionParams p;
  ASSERT_FALSE(parse_completion_request(json{{"prompt", "hi"}}, p));
  ASSERT_EQ(p.prompts.size(), 1u);
  EXPECT_FALSE(p.prompts[0].is_ids);
  CompletionParams q;
  ASSERT_FALSE(parse_completion_request(json{{"prompt", {1, 2, 3}}}, q));
  ASSERT_EQ(q.prompts.size(), 1u);
  EXPECT_TRUE(q.prompts[0].is_ids);
  CompletionParams r;
  ASSERT_FALSE(parse_completion_request(json{{"prompt", {{1, 2}, {3}}}}, r));
  EXPECT_EQ(r.prompts.size(), 2u);
  CompletionParams s;
  ASSERT_FALSE(parse_completion_request(json{{"prompt", {"a", "b", "c"}}}, s));
  EXPECT_EQ(s.prompts.size(), 3u);
}

TEST(CompletionSchema, DefaultsAndFields) {
  CompletionParams p;
  json body = {{"model", "m"}, {"prompt", "x"}, {"max_tokens", 5}, {"temperature", 0.5}, {"top_k", 3},
               {"seed", 42},   {"stop", "END"}, {"logprobs", 2},   {"n", 3},             {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  ASSERT_FALSE(parse_completion_request(body, p));
  EXPECT_EQ(p.model, "m");
  EXPECT_EQ(*p.max_tokens, 5);
  EXPECT_EQ(p.n, 3);
  EXPECT_TRUE(p.stream && p.include_usage && p.logprobs);
  EXPECT_EQ(p.top_logprobs, 2);
  ASSERT_EQ(p.stop.size(), 1u);
  auto sp = p.sampling({});
  EXPECT_DOUBLE_EQ(sp.temperature, 0.5);
  EXPECT_EQ(sp.top_k, 3);
  EXPECT_EQ(*sp.seed, 42u);
}

TEST(CompletionSchema, NullMeansAbsent) {
  CompletionParams p;
  ASSERT_FALSE(parse_completion_request(json{{"prompt", "x"}, {"temperature", nullptr}, {"suffix", nullptr}}, p));
  EXPECT_FALSE(p.temperature.has_value());
}

TEST(CompletionSchema, Errors) {
  auto err = [](json body) {
    CompletionParams p;
    auto e = parse_completion_request(body, p);
    return e ? e->param : std::string("<ok>");
  };
  EXPECT_EQ(err({{"prompt", "x"}, {"frobnicate", 1}}), "frobnicate");
  EXPECT_EQ(err({{"prompt", "x"}, {"best_of", 3}}), "<ok>");
  EXPECT_EQ(err({{"prompt", "x"}, {"n", 3}, {"best_of", 2}}), "best_of");           // best_of < n
  EXPECT_EQ(err({{"prompt", "x"}, {"best_of", 0}}), "best_of");
  EXPECT_EQ(err({{"prompt", "x"}, {"best_of", 1000}}), "best_of");                 // over --max-n
  EXPECT_EQ(err({{"prompt", "x"}, {"best_of", 2}, {"stream", true}}), "best_of");  // cannot be streamed
  EXPECT_EQ(err({{"prompt", "x"}, {"n", 2}, {"best_of", 2}, {"stream", true}}), "<ok>");
  EXPECT_EQ(err({{"prompt", "x"}, {"suffix", "tail"}}), "suffix");
  EXPECT_EQ(err({{"prompt", "x"}, {"temperature", -1}}), "temperature");
  EXPECT_EQ(err({{"prompt", "x"}, {"temperature", "hot"}}), "temperature");
  EXPECT_EQ(err({{"prompt", "x"}, {"max_tokens", 0}}), "max_tokens");
  EXPECT_EQ(err({{"prompt", "x"}, {"max_tokens", 1.5}}), "max_tokens");
  EXPECT_EQ(err({{"prompt", "x"}, {"n", 0}}), "n");
  EXPECT_EQ(err({{"prompt", "x"}, {"n", 1000}}), "n");
  EXPECT_EQ(err({{"prompt", "x"}, {"top_p", 0}}), "top_p");
  EXPECT_EQ(err({{"prompt", "x"}, {"stop", {"a", 1}}}), "stop");
  EXPECT_EQ(err({{"prompt", "x"}, {"stop", ""}}), "stop");
  EXPECT_EQ(err({{"prompt", "x"}, {"logit_bias", {{"5", 1000}}}}), "logit_bias");
  EXPECT_EQ(err({{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}), "stream_options");
  EXPECT_EQ(err({{"prompt", "x"}, {"echo", true}, {"logprobs", 1}}), "<ok>");  // prompt logprobs
  EXPECT_EQ(err({{"max_tokens", 3}}), "prompt");
  EXPECT_EQ(err({{"prompt", json::array()}}), "prompt");
  EXPECT_EQ(err({{"prompt", {{1}, json::array()}}}), "prompt");
  EXPECT_EQ(err({{"prompt", 5}}), "prompt");
  CompletionParams p;
  auto e = parse_completion_request(json{{"prompt", "x"}, {"frobnicate", 1}}, p);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_NE(e->message.find("frobnicate"), std::string::npos);
}

TEST(ChatSchema, ContentPartsAndRoles) {
  ChatParams p;
  ojson body = ojson::parse(R"({"messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
      "max_completion_tokens":7,"logprobs":true,"top_logprobs":3})");
  ASSERT_FALSE(parse_chat_request(body, p));
  EXPECT_EQ(p.messages[1]["content"], "a\nb");
  EXPECT_EQ(*p.max_tokens, 7);
  EXPECT_EQ(p.top_logprobs, 3);
}

TEST(ChatSchema, Errors) {
  auto err = [](const char* text) {
    ChatParams p;
    auto e = parse_chat_request(ojson::parse(text), p);
    return e ? e->param : std::string("<ok>");
  };
  EXPECT_EQ(err(R"({"messages":[]})"), "messages");
  EXPECT_EQ(err(R"({"messages":[{"role":"wizard","content":"x"}]})"), "messages");
  EXPECT_EQ(err(R"({"messages":[{"role":"user"}]})"), "messages");
  EXPECT_EQ(err(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})"), "messages");
  EXPECT_EQ(err(R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})"), "top_logprobs");
  EXPECT_EQ(err(R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}})"), "response_format");
  EXPECT_EQ(err(R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"required"})"), "tool_choice");
  EXPECT_EQ(err(R"({"messages":[{"role":"user","content":"x"}],"functions":[]})"), "functions");
  EXPECT_EQ(err(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":3,"max_completion_tokens":4})"),
            "max_completion_tokens");
  EXPECT_EQ(err(R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})"), "<ok>");
  EXPECT_EQ(err(R"({"messages":[{"role":"assistant","content":null,"tool_calls":[]}]})"), "<ok>");
}

TEST(Metrics, RendersPrometheusText) {
  Metrics m;
  m.request_done("/v1/completions", 200);
  m.request_done("/v1/completions", 400);
  m.ttft.observe(0.02);
  m.set_audit_findings({{"vocab.padding_rows", "info"}});
  std::string t = m.render();
  EXPECT_NE(t.find("ballast_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1"), std::string::npos);
  EXPECT_NE(t.find("ballast_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"), std::string::npos);
  EXPECT_NE(t.find("ballast_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(t.find("ballast_audit_findings{id=\"vocab.padding_rows\",severity=\"info\"} 1"), std::string::npos);
}

// Issue 14: request bodies are pre-scanned before nlohmann builds anything.
TEST(JsonBody, DepthAndCountLimits) {
  auto status = [](const std::string& body, JsonBodyLimits lim = {}) {
    ojson j;
    auto e = parse_json_body(body, j, lim);
    return e ? e->status : 200;
  };
  auto deep = [](size_t d) { return std::string(d, '[') + std::string(d, ']'); };
  EXPECT_EQ(status("{\"a\":" + deep(63) + "}"), 200);
  EXPECT_EQ(status("{\"a\":" + deep(64) + "}"), 400);
  EXPECT_EQ(status("{\"a\":" + deep(70000) + "}"), 400);  // used to overflow the stack later
  EXPECT_EQ(status("{\"a\":\"" + std::string(100, '[') + "\"}"), 200);  // brackets inside strings
  EXPECT_EQ(status(R"({"a":"\"[[[[\\"})"), 200);                         // escapes
  JsonBodyLimits small;
  small.max_containers = 3;
  small.max_values = 5;
  EXPECT_EQ(status("[[],[]]", small), 200);
  EXPECT_EQ(status("[[],[],[]]", small), 400);
  EXPECT_EQ(status("[1,2,3,4,5]", small), 200);
  EXPECT_EQ(status("[1,2,3,4,5,6]", small), 400);
}

TEST(JsonBody, RejectsBomNulAndTrailingData) {
  auto status = [](const std::string& body) {
    ojson j;
    auto e = parse_json_body(body, j);
    return e ? e->status : 200;
  };
  EXPECT_EQ(status(" {\"a\":1} \r\n"), 200);
  EXPECT_EQ(status("\xEF\xBB\xBF{\"a\":1}"), 400);
  EXPECT_EQ(status(std::string("{\"a\":1}\0", 8)), 400);
  EXPECT_EQ(status(std::string("{\"a\":1}\0junk", 12)), 400);
  EXPECT_EQ(status("{\"a\":1} x"), 400);
  EXPECT_EQ(status("{\"a\":1}{}"), 400);
  EXPECT_EQ(status("{\"a\":"), 400);
  EXPECT_EQ(status("not json"), 400);
}

TEST(JsonBody, BriefJsonIsBounded) {
  ojson big = ojson::array();
  for (int i = 0; i < 10000; ++i) big.push_back(i);
  EXPECT_LE(brief_json(big).size(), 64u + 3u);
  EXPECT_EQ(brief_json(ojson(5)), "5");
}

TEST(ChatSchema, KwargsAndMessageLimits) {
  auto err = [](const std::string& text, SchemaLimits lim = {}) {
    ChatParams p;
    auto e = parse_chat_request(ojson::parse(text), p, lim);
    return e ? e->param : std::string("<ok>");
  };
  const std::string msgs = R"("messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}])";
  for (const char* k : {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token", "documents"})
    EXPECT_EQ(err("{" + msgs + R"(,"chat_template_kwargs":{")" + k + R"(":1}})"), "chat_template_kwargs") << k;
  EXPECT_EQ(err("{" + msgs + R"(,"chat_template_kwargs":{"enable_thinking":false}})"), "<ok>");
  SchemaLimits one;
  one.max_messages = 1;
  EXPECT_EQ(err("{" + msgs + "}", one), "messages");
  EXPECT_EQ(err("{" + msgs + "}"), "<ok>");
}
