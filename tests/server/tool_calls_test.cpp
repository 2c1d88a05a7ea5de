// Tool calling without a model: format detection, reply parsing for every format (exact
// content and calls, malformed output left as content, several calls), streaming hold-back,
// request validation and the grammars that force a call.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "grammar/grammar.h"
#include "server/openai_schema.h"
#include "server/tool_calls.h"
#include "server/tool_grammar.h"

using namespace ballast::server;
using ojson = nlohmann::ordered_json;

namespace {

const std::vector<std::string> kNames{"get_weather", "add"};

// (name, arguments) of each call; ids are checked separately.
std::vector<std::pair<std::string, std::string>> calls_of(const ParsedReply& r) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& c : r.calls) out.emplace_back(c.name, c.arguments);
  return out;
}

using Calls = std::vector<std::pair<std::string, std::string>>;

ParsedReply parse(const std::string& text, ToolCallFormat f) { return parse_tool_calls(text, f, kNames); }

std::string read_template(const std::string& name) {
  std::ifstream in(std::string(BALLAST_SHARED_DIR) + "/chat-templates/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(ToolCallFormat, DetectedFromTemplateText) {
  EXPECT_EQ(detect_tool_call_format(read_template("Qwen-Qwen2.5-7B-Instruct.jinja")), ToolCallFormat::kHermes);
  EXPECT_EQ(detect_tool_call_format(read_template("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja")),
            ToolCallFormat::kHermes);
  EXPECT_EQ(detect_tool_call_format(read_template("meta-llama-Llama-3.1-8B-Instruct.jinja")), ToolCallFormat::kLlama3);
  EXPECT_EQ(detect_tool_call_format(read_template("meta-llama-Llama-3.2-3B-Instruct.jinja")), ToolCallFormat::kLlama3);
  EXPECT_EQ(detect_tool_call_format(read_template("mistralai-Mistral-Nemo-Instruct-2407.jinja")),
            ToolCallFormat::kMistral);
  EXPECT_EQ(detect_tool_call_format("{{ 'Call tools in ```tool_code blocks' }}"), ToolCallFormat::kGemma3);
}

TEST(ToolCallIds, Shapes) {
  EXPECT_TRUE(std::regex_match(new_tool_call_id(ToolCallFormat::kHermes), std::regex("call_[A-Za-z0-9]{24}")));
  EXPECT_TRUE(std::regex_match(new_tool_call_id(ToolCallFormat::kMistral), std::regex("[A-Za-z0-9]{9}")));
  EXPECT_NE(new_tool_call_id(ToolCallFormat::kHermes), new_tool_call_id(ToolCallFormat::kHermes));
}

TEST(HermesCalls, OneCallWithContentAround) {
  auto r = parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
                 "\"days\": 2}}\n</tool_call>",
                 ToolCallFormat::kHermes);
  EXPECT_EQ(r.content, "Let me check.");
  EXPECT_EQ(calls_of(r), (Calls{{"get_weather", R"({"city":"Paris","days":2})"}}));
  EXPECT_TRUE(std::regex_match(r.calls[0].id, std::regex("call_[A-Za-z0-9]{24}")));
}

TEST(HermesCalls, SeveralCallsStringArgumentsAndUnterminatedLast) {
  auto r = parse("<tool_call>\n{\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 1, \\\"b\\\": 2}\"}\n</tool_call>\n"
                 "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>\n"
                 "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": [1.5, null]}}",
                 ToolCallFormat::kHermes);
  EXPECT_EQ(r.content, "");
  EXPECT_EQ(calls_of(r), (Calls{{"add", R"({"a":1,"b":2})"}, {"get_weather", "{}"}, {"add", R"({"a":[1.5,null]})"}}));
  EXPECT_NE(r.calls[0].id, r.calls[1].id);
}

TEST(HermesCalls, MalformedStaysContent) {
  for (const std::string text : {
           "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>",  // bad JSON
           "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>",             // unknown function
           "<tool_call>\n{\"arguments\": {}}\n</tool_call>",                                   // no name
           "<tool_call>\n{\"name\": \"add\", \"arguments\": 3}\n</tool_call>",                 // arguments not an object
           "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call><tool_call>oops</tool_call>",
           "no calls here, just <tool_call mentioned"}) {
    auto r = parse(text, ToolCallFormat::kHermes);
    EXPECT_EQ(r.content, text);
    EXPECT_TRUE(r.calls.empty()) << text;
  }
}

TEST(Llama3Calls, BareJsonPythonTagAndParametersKey) {
  auto r = parse(" {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", ToolCallFormat::kLlama3);
  EXPECT_EQ(r.content, "");
  EXPECT_EQ(calls_of(r), (Calls{{"get_weather", R"({"city":"Oslo"})"}}));
  r = parse("<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 1}}; {\"name\": \"add\", \"arguments\": {\"a\": 2}}",
            ToolCallFormat::kLlama3);
  EXPECT_EQ(calls_of(r), (Calls{{"add", R"({"a":1})"}, {"add", R"({"a":2})"}}));
  EXPECT_EQ(r.content, "");
}

TEST(Llama3Calls, ProseAndForeignJsonStayContent) {
  for (const std::string text : {"The weather is nice.", "{\"name\": \"Bob\", \"age\": 3}",
                                 "Here: {\"name\": \"add\", \"parameters\": {}}", "{\"name\": \"add\", \"parameters\": {}",
                                 "<|python_tag|>brave_search.call(query=\"x\")"}) {
    auto r = parse(text, ToolCallFormat::kLlama3);
    EXPECT_EQ(r.content, text);
    EXPECT_TRUE(r.calls.empty()) << text;
  }
}

TEST(MistralCalls, MarkerArrayAndBareArray) {
  auto r = parse("[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}, \"id\": \"abcdefghi\"}, "
                 "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]",
                 ToolCallFormat::kMistral);
  EXPECT_EQ(r.content, "");
  EXPECT_EQ(calls_of(r), (Calls{{"add", R"({"a":1,"b":2})"}, {"get_weather", R"({"city":"Rome"})"}}));
  EXPECT_TRUE(std::regex_match(r.calls[0].id, std::regex("[A-Za-z0-9]{9}")));
  // [TOOL_CALLS] is a control token: with skip_special_tokens the text is the bare array.
  r = parse("[{\"name\": \"add\", \"arguments\": {}}]", ToolCallFormat::kMistral);
  EXPECT_EQ(calls_of(r), (Calls{{"add", "{}"}}));
  r = parse("Sure.[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {}}]", ToolCallFormat::kMistral);
  EXPECT_EQ(r.content, "Sure.");
  EXPECT_EQ(calls_of(r), (Calls{{"add", "{}"}}));
  for (const std::string text : {"[TOOL_CALLS][]", "[TOOL_CALLS][{\"name\": \"add\"", "[1, 2, 3]"}) {
    r = parse(text, ToolCallFormat::kMistral);
    EXPECT_EQ(r.content, text);
    EXPECT_TRUE(r.calls.empty()) << text;
  }
}

TEST(Gemma3Calls, ToolCodePythonJsonAndBare) {
  auto r = parse("I'll look it up.\n```tool_code\nget_weather(city=\"Paris\", days=2, metric=True, "
                 "tags=['a', \"b\"], extra={'k': None})\n```\nDone.",
                 ToolCallFormat::kGemma3);
  EXPECT_EQ(r.content, "I'll look it up.\n\nDone.");
  EXPECT_EQ(calls_of(r),
            (Calls{{"get_weather", R"({"city":"Paris","days":2,"metric":true,"tags":["a","b"],"extra":{"k":null}})"}}));
  r = parse("```tool_code\n{\"name\": \"add\", \"arguments\": {\"a\": -1.5}}\n```", ToolCallFormat::kGemma3);
  EXPECT_EQ(calls_of(r), (Calls{{"add", R"({"a":-1.5})"}}));
  r = parse("```tool_code\nadd(a=1)\nadd(a=2)\n```", ToolCallFormat::kGemma3);
  EXPECT_EQ(calls_of(r), (Calls{{"add", R"({"a":1})"}, {"add", R"({"a":2})"}}));
  r = parse("{\"name\": \"add\", \"parameters\": {}}", ToolCallFormat::kGemma3);
  EXPECT_EQ(calls_of(r), (Calls{{"add", "{}"}}));
  for (const std::string text : {"```tool_code\nadd(a=)\n```", "```tool_code\nprint('hi')\n```", "```python\nadd(a=1)\n```"}) {
    r = parse(text, ToolCallFormat::kGemma3);
    EXPECT_EQ(r.content, text);
    EXPECT_TRUE(r.calls.empty()) << text;
  }
}

TEST(ToolCallStreamer, PlainTextStreamsAtOnceMarkersAreHeld) {
  ToolCallStreamer s(ToolCallFormat::kHermes, kNames);
  EXPECT_EQ(s.push("Hello "), "Hello ");
  EXPECT_EQ(s.push("world <tool"), "world ");  // could be a marker
  EXPECT_EQ(s.push("s> are"), "<tools> are");   // was not
  EXPECT_EQ(s.push(" next.\n<tool_"), " next.\n");
  EXPECT_EQ(s.push("call>\n{\"name\": \"add\", "), "");
  EXPECT_TRUE(s.in_call());
  EXPECT_EQ(s.push("\"arguments\": {\"a\": 1}}\n</tool_call>"), "");
  auto r = s.finish();
  EXPECT_EQ(r.content, "");
  EXPECT_EQ(calls_of(r), (Calls{{"add", R"({"a":1})"}}));
}

TEST(ToolCallStreamer, HeldTextThatIsNoCallBecomesContent) {
  ToolCallStreamer s(ToolCallFormat::kLlama3, kNames);
  EXPECT_EQ(s.push("  "), "");
  EXPECT_EQ(s.push("{\"name\": \"Bob\"}"), "");
  auto r = s.finish();
  EXPECT_EQ(r.content, "  {\"name\": \"Bob\"}");
  EXPECT_TRUE(r.calls.empty());
  ToolCallStreamer t(ToolCallFormat::kLlama3, kNames);
  EXPECT_EQ(t.push("Plain {json} later"), "Plain {json} later");  // a bare call must be the whole reply
  EXPECT_EQ(t.finish().content, "");
  ToolCallStreamer m(ToolCallFormat::kMistral, kNames);
  EXPECT_EQ(m.push("[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {}}]"), "");
  EXPECT_EQ(calls_of(m.finish()), (Calls{{"add", "{}"}}));
}

TEST(ToolRequest, ChoiceValidation) {
  auto err = [](const std::string& extra) {
    ChatParams p;
    auto e = parse_chat_request(ojson::parse(R"({"messages":[{"role":"user","content":"x"}])" + extra + "}"), p);
    return e ? e->param + ": " + e->message : std::string("<ok>");
  };
  const std::string tools = R"(,"tools":[{"type":"function","function":{"name":"add","parameters":{"type":"object"}}}])";
  EXPECT_EQ(err(tools + R"(,"tool_choice":"required")"), "<ok>");
  EXPECT_EQ(err(tools + R"(,"tool_choice":"none")"), "<ok>");
  EXPECT_EQ(err(tools + R"(,"tool_choice":{"type":"function","function":{"name":"add"}})"), "<ok>");
  EXPECT_EQ(err(tools + R"(,"tool_choice":{"type":"function","function":{"name":"sub"}})"),
            "tool_choice: 'tool_choice' names the function 'sub', which is not in 'tools'");
  EXPECT_EQ(err(tools + R"(,"tool_choice":"sometimes")").substr(0, 13), "tool_choice: ");
  EXPECT_EQ(err(R"(,"tool_choice":"required")"), "tool_choice: 'tool_choice' required needs 'tools'");
  EXPECT_EQ(err(R"(,"tools":[{"type":"function","function":{"name":"a b"}}])").substr(0, 7), "tools: ");
  EXPECT_EQ(err(R"(,"tools":[{"type":"retrieval"}])").substr(0, 7), "tools: ");
  EXPECT_EQ(err(tools + R"(,"parallel_tool_calls":false)"), "<ok>");
  EXPECT_EQ(err(tools + R"(,"tool_choice":"required","response_format":{"type":"json_object"})").substr(0, 13),
            "tool_choice: ");
  ChatParams p;
  ASSERT_FALSE(parse_chat_request(ojson::parse(R"({"messages":[{"role":"user","content":"x"}])" + tools + "}"), p));
  EXPECT_EQ(p.tool_choice.mode, ToolChoice::Mode::kAuto);
  ASSERT_FALSE(parse_chat_request(ojson::parse(R"({"messages":[{"role":"user","content":"x"}]})"), p));
  EXPECT_EQ(p.tool_choice.mode, ToolChoice::Mode::kNone);
  EXPECT_TRUE(p.tools.is_null());
}

TEST(ToolRequest, ToolTurnsNormalized) {
  ChatParams p;
  auto body = ojson::parse(R"({"messages":[{"role":"user","content":"x"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
      "function":{"name":"add","arguments":"{\"a\": 1}"}},
      {"id":"call_2","type":"function","function":{"name":"add","arguments":"not json"}}]},
    {"role":"tool","tool_call_id":"call_1","content":"1"}]})");
  ASSERT_FALSE(parse_chat_request(body, p));
  EXPECT_EQ(p.messages[1]["content"], "");
  EXPECT_EQ(p.messages[1]["tool_calls"][0]["function"]["arguments"], ojson::parse(R"({"a": 1})"));
  EXPECT_EQ(p.messages[1]["tool_calls"][1]["function"]["arguments"], "not json");
  auto bad = [](const char* msgs) {
    ChatParams q;
    auto e = parse_chat_request(ojson::parse(std::string(R"({"messages":)") + msgs + "}"), q);
    return e ? e->message : std::string("<ok>");
  };
  EXPECT_EQ(bad(R"([{"role":"assistant","content":null,"tool_calls":[{"function":{"arguments":"{}"}}]}])"),
            "'messages[0].tool_calls[0].function.name' is required");
  EXPECT_EQ(bad(R"([{"role":"tool","tool_call_id":5,"content":"x"}])"), "'messages[0].tool_call_id' must be a string");
  EXPECT_EQ(bad(R"([{"role":"user","content":"x","tool_calls":[]}])"),
            "'messages[0].tool_calls' is only allowed on assistant messages");
}

TEST(ToolGrammar, PrefixesRulesOutsideLiteralsAndClasses) {
  EXPECT_EQ(prefix_gbnf_rules("root ::= a \"b c\" [a-z]{1,3} # c d\na ::= \"\\\"x\"\n", "p-"),
            "p-root ::= p-a \"b c\" [a-z]{1,3} # c d\np-a ::= \"\\\"x\"\n");
}

TEST(ToolGrammar, ForcedCallGrammarsParse) {
  auto tools = ojson::parse(R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
      "properties":{"city":{"type":"string"},"days":{"type":"integer","minimum":1,"maximum":7}},
      "required":["city","days"],"additionalProperties":false}}},
    {"type":"function","function":{"name":"add"}}])");
  for (auto f : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3, ToolCallFormat::kMistral, ToolCallFormat::kGemma3})
    for (const std::string name : {"", "add"}) {
      auto g = tool_call_gbnf(f, tools, name);
      ASSERT_TRUE(g.ok()) << g.status().message();
      auto parsed = ballast::grammar::parse_gbnf(g.value());
      EXPECT_TRUE(parsed.ok()) << tool_call_format_name(f) << ": " << parsed.status().message() << "\n" << g.value();
    }
  auto g = tool_call_gbnf(ToolCallFormat::kHermes, tools, "add");
  EXPECT_EQ(g.value().substr(0, g.value().find('\n', 10)),
            "root ::= \"<tool_call>\\n{\\\"name\\\": \\\"\" ( ( \"add\" \"\\\", \\\"arguments\\\": \" t0-root ) ) "
            "\"}\\n</tool_call>\"");
  auto bad = ojson::parse(R"([{"type":"function","function":{"name":"f","parameters":{"type":"object",
      "patternProperties":{}}}}])");
  auto e = tool_call_gbnf(ToolCallFormat::kHermes, bad, "");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("'patternProperties'"), std::string::npos);
}
