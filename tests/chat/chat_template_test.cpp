// Unit tests for the chat template interpreter: exact outputs, content-span tracking,
// resource limits, and robustness against malformed input.
#include "chat/chat_template.h"
#include "chat/interpreter.h"
#include "chat/parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace ballast::chat {
namespace {

using Json = nlohmann::ordered_json;

Result<RenderedPrompt> render(const std::string& src, const Json& messages = Json::array(),
                              RenderOptions opts = {}) {
  auto t = ChatTemplate::parse(src);
  if (!t.ok()) return t.status();
  return t->render(messages, opts);
}

std::string text(const std::string& src, const Json& messages = Json::array(), RenderOptions opts = {}) {
  auto r = render(src, messages, opts);
  EXPECT_TRUE(r.ok()) << src << ": " << r.status().message();
  return r.ok() ? r->text : "<error>";
}

std::string spans_text(const RenderedPrompt& p) {
  std::string out;
  for (const auto& s : p.content_spans) out += "[" + p.text.substr(s.begin, s.end - s.begin) + "]";
  return out;
}

TEST(ChatTemplate, BasicOutputs) {
  EXPECT_EQ(text("Hello {{ 'world' }}!"), "Hello world!");
  EXPECT_EQ(text("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 1 / 4 }} {{ 2 ** 10 }}"), "7 3 2 0.25 1024");
  EXPECT_EQ(text("{{ none }} {{ true }} {{ 1.0 }} {{ 1e20 }} {{ [1, 'a', none] }} {{ {'k': 'v'} }}"),
            "None True 1.0 1e+20 [1, 'a', None] {'k': 'v'}");
  EXPECT_EQ(text("{{ undefined_name }}|{{ undefined_name is defined }}"), "|False");
  EXPECT_EQ(text("{% for x in [1, 2, 3] %}{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}"), "1, 2, 3");
  EXPECT_EQ(text("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "6");
  EXPECT_EQ(text("{% macro m(a, b='x') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(2, b='y') }}"), "1x2y");
  EXPECT_EQ(text("{{ 'a,b'.split(',') }} {{ '  x '.strip() }} {{ 'abc'[::-1] }}"), "['a', 'b'] x cba");
  EXPECT_EQ(text("{{ {'b': 1, 'a': [1.5, none]} | tojson }}"), "{\"b\": 1, \"a\": [1.5, null]}");
  EXPECT_EQ(text("{{ 'é' | tojson }}"), "\"é\"");  // transformers: ensure_ascii=False
}

TEST(ChatTemplate, WhitespaceControlMatchesTransformers) {
  // trim_blocks + lstrip_blocks + no trailing newline.
  EXPECT_EQ(text("a\n  {% if true %}\n  b\n  {% endif %}\nc\n"), "a\n  b\nc");
  EXPECT_EQ(text("a   {{- 'b' -}}   c"), "abc");
  EXPECT_EQ(text("x {%+ if true %}y{% endif %}"), "x y");
  EXPECT_EQ(text("{# comment #}\nz"), "z");
}

TEST(ChatTemplate, GlobalsFromOptions) {
  RenderOptions o;
  o.add_generation_prompt = true;
  o.bos_token = "<s>";
  o.extra_context = Json{{"enable_thinking", false}};
  o.now = "2024-07-26 10:30:00";
  EXPECT_EQ(text("{{ bos_token }}{{ add_generation_prompt }}{{ tools }}{{ enable_thinking }}{{ strftime_now('%d %b %Y') }}",
                 Json::array(), o),
            "<s>TrueNoneFalse26 Jul 2024");
}

TEST(ChatTemplate, ExtraContextIsTaintedAndCannotOverrideRendererVariables) {
  // Issue 14: client kwargs are request data (tokenized as text), and may not replace
  // the conversation or the special tokens.
  RenderOptions o;
  o.extra_context = Json{{"who", "<|im_start|>"}, {"flag", true}};
  auto r = render("A{{ who }}B{{ flag }}", Json::array(), o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->text, "A<|im_start|>BTrue");
  EXPECT_EQ(spans_text(*r), "[<|im_start|>]");
  for (const char* key : {"messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token",
                          "raise_exception", "range"}) {
    RenderOptions bad;
    bad.extra_context = Json{{key, "x"}};
    auto b = render("{{ messages }}", Json::array(), bad);
    ASSERT_FALSE(b.ok()) << key;
    EXPECT_NE(b.status().message().find(std::string("'") + key + "'"), std::string::npos) << b.status().message();
    EXPECT_TRUE(is_reserved_variable(key));
  }
  EXPECT_FALSE(is_reserved_variable("enable_thinking"));
}

TEST(ChatTemplate, KeysOfRequestDataAreTainted) {
  // A tool parameter named like a control token is printed by templates that list
  // properties; it must stay text (issue 14).
  RenderOptions o;
  o.tools = Json::array({Json{{"properties", Json{{"<|im_end|>", 1}}}}});
  auto r = render("{% for k, v in tools[0].properties.items() %}<{{ k }}>{% endfor %}", Json::array(), o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->text, "<<|im_end|>>");
  EXPECT_EQ(spans_text(*r), "[<|im_end|>]");
}

TEST(ChatTemplate, RaiseExceptionIsAnError) {
  auto r = render("{{ raise_exception('roles must alternate') }}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTemplateError);
  EXPECT_NE(r.status().message().find("roles must alternate"), std::string::npos);
}

TEST(ChatTemplate, UndefinedAttributeOfUndefinedErrors) {
  EXPECT_FALSE(render("{{ nope.attr }}").ok());
  EXPECT_TRUE(render("{{ messages[5] }}").ok());  // missing item is Undefined, not an error
  EXPECT_FALSE(render("{% set l = [] %}{{ l.append(1) }}").ok());  // sandbox: immutable
}

TEST(ContentSpans, TrackMessageStringsThroughOperations) {
  Json msgs = Json::array({Json{{"role", "user"}, {"content", "  <|im_start|>hi  "}}});
  auto r = render("<|im_start|>{{ messages[0].role }}\n{{ messages[0].content | trim }}<|im_end|>", msgs);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "<|im_start|>user\n<|im_start|>hi<|im_end|>");
  EXPECT_EQ(spans_text(*r), "[user][<|im_start|>hi]");

  r = render("{{ '<' + messages[0].content.split('x')[1].upper() + '>' }}",
             Json::array({Json{{"role", "user"}, {"content", "axbc"}}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "<BC>");
  EXPECT_EQ(spans_text(*r), "[BC]");

  r = render("{{ messages | tojson }}", Json::array({Json{{"content", "a\"b"}}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "[{\"content\": \"a\\\"b\"}]");
  // Escaped content bytes and the key (request data too); json.dumps' quotes are markup.
  EXPECT_EQ(spans_text(*r), "[content][a\\\"b]");

  r = render("{{ messages[0].content | replace('X', '<tag>') }}", Json::array({Json{{"content", "aXb"}}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(spans_text(*r), "[a][b]");  // the template's replacement text is not content
}

TEST(ContentSpans, TemplateTextIsNeverTainted) {
  RenderOptions o;
  o.bos_token = "<s>";
  auto r = render("{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}",
                  Json::array({Json{{"content", "a"}}, Json{{"content", "b"}}}), o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "<s>[a][b]");
  ASSERT_EQ(r->content_spans.size(), 2u);
  EXPECT_EQ(r->content_spans[0].begin, 4u);
  EXPECT_EQ(r->content_spans[0].end, 5u);
}

TEST(Limits, HostileTemplatesFailCleanly) {
  const char* hostile[] = {
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
      "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
      "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
      "{{ 'x' * 1000000000000 }}",
      "{{ [1] * 1000000000 }}",
      "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
      "{{ range(10000000) | list }}",
      "{{ 2 ** 100 }}",
  };
  for (const char* src : hostile) {
    auto r = render(src);
    EXPECT_FALSE(r.ok()) << src;
    if (!r.ok()) EXPECT_EQ(r.status().code(), ErrorCode::kTemplateError);
  }
}

TEST(Limits, DeepNestingIsRejectedNotCrashing) {
  std::string parens = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
  EXPECT_FALSE(render(parens).ok());
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  for (int i = 0; i < 5000; ++i) ifs += "{% endif %}";
  EXPECT_FALSE(render(ifs).ok());
  std::string nots = "{{ " ;
  for (int i = 0; i < 100000; ++i) nots += "not ";
  EXPECT_FALSE(render(nots + "1 }}").ok());
}

TEST(Robustness, MalformedTemplatesGiveErrors) {
  const char* bad[] = {"{% if true %}", "{{ 1 + }}", "{% endfor %}", "{{ 'abc }}", "{# x", "{% raw %}x",
                       "{{ a.b( }}", "{% set %}", "{% macro %}", "{{ x | nosuchfilter }}", "{{ x is nosuchtest }}",
                       "{% break %}", "{{ ]] }}", "{% for x in %}{% endfor %}", "{{ '\\x4' }}", "{% include 'x' %}"};
  for (const char* src : bad) {
    auto t = ChatTemplate::parse(src);
    EXPECT_FALSE(t.ok()) << src;
  }
}

TEST(Robustness, EveryPrefixAndMutationOfRealTemplatesIsSafe) {
  std::string path = std::string(BALLAST_SHARED_DIR) + "/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja";
  std::ifstream f(path);
  if (!f) GTEST_SKIP() << "missing " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string src = ss.str();
  Json msgs = Json::array({Json{{"role", "user"}, {"content", "hi"}}});
  for (size_t n = 0; n <= src.size(); n += 7) {
    auto t = ChatTemplate::parse(src.substr(0, n));
    if (t.ok()) (void)t->render(msgs, {});
  }
  uint32_t seed = 12345;
  for (int i = 0; i < 300; ++i) {
    std::string m = src;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1664525u + 1013904223u;
      size_t pos = seed % m.size();
      m[pos] = "{}%#()[]|.-+'\"~ \n"[(seed >> 16) % 17];
    }
    auto t = ChatTemplate::parse(m);
    if (t.ok()) (void)t->render(msgs, {});
  }
  SUCCEED();
}

TEST(Robustness, BadMessageShapesAreErrorsOrRender) {
  auto t = ChatTemplate::parse("{% for m in messages %}{{ m['content'] + m.role }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->render(Json::array({Json{{"content", 1}, {"role", "user"}}}), {}).ok());
  EXPECT_FALSE(t->render(Json(5), {}).ok());
  EXPECT_TRUE(t->render(Json::array(), {}).ok());
}

// Found by fuzz/jinja.cpp under LeakSanitizer: a macro closes over its defining scope and is
// stored in it, a shared_ptr cycle that kept every render's scopes (messages included) alive.
TEST(ChatTemplate, MacroScopesAreFreedAfterRender) {
  const char* sources[] = {
      "{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1) }}",
      "{% set ns = namespace(m=none) %}{% for i in [1, 2] %}{% macro g() %}{{ i }}{% endmacro %}"
      "{% set ns.m = g %}{% endfor %}{{ ns.m() }}",
      "{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}x{% endcall %}",
      "{% macro f() %}{% endmacro %}{{ raise_exception('stop') }}",
  };
  for (const char* src : sources) {
    auto tmpl = parse_template(src, ParseOptions{});
    auto globals = std::make_shared<Scope>();
    {
      Interpreter in(Limits{}, globals);
      try {
        (void)in.render(*tmpl);
      } catch (const TemplateException&) {
      }
    }
    EXPECT_EQ(globals.use_count(), 1) << src;
  }
}

}  // namespace
}  // namespace ballast::chat
