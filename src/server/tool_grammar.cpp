// Grammars forcing a tool call (tool_grammar.h): each function's parameter schema compiled
// by the JSON-schema compiler, its rules prefixed so several schemas share one grammar.
#include "server/tool_grammar.h"

#include <cctype>

#include "grammar/json_schema.h"

namespace ballast::server {

namespace {

using ojson = nlohmann::ordered_json;

// A GBNF string literal for text (names are [A-Za-z0-9_-]; quotes and newlines escaped).
std::string lit(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out + "\"";
}

// The call as the format writes it, around "<name literal>" and "<arguments rule>".
struct Shape {
  std::string open, between, close;
};

Shape shape(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kHermes: return {"<tool_call>\n{\"name\": \"", "\", \"arguments\": ", "}\n</tool_call>"};
    case ToolCallFormat::kLlama3: return {"{\"name\": \"", "\", \"parameters\": ", "}"};
    case ToolCallFormat::kMistral: return {"[{\"name\": \"", "\", \"arguments\": ", "}]"};
    case ToolCallFormat::kGemma3:
      return {"```tool_code\n{\"name\": \"", "\", \"arguments\": ", "}\n```"};
  }
  return {};
}

}  // namespace

std::string prefix_gbnf_rules(const std::string& g, const std::string& prefix) {
  std::string out;
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; };
  for (size_t i = 0; i < g.size();) {
    const char c = g[i];
    if (c == '"' || c == '[') {  // literal or class: copied with its escapes
      const char close = c == '"' ? '"' : ']';
      size_t j = i + 1;
      while (j < g.size() && g[j] != close) j += g[j] == '\\' ? 2 : 1;
      out.append(g, i, j + 1 - i);
      i = j + 1;
    } else if (c == '#') {
      size_t j = g.find('\n', i);
      if (j == std::string::npos) j = g.size();
      out.append(g, i, j - i);
      i = j;
    } else if (c == '{') {  // repetition bounds {m,n}
      size_t j = g.find('}', i);
      if (j == std::string::npos) j = g.size() - 1;
      out.append(g, i, j + 1 - i);
      i = j + 1;
    } else if (name_char(c)) {
      size_t j = i;
      while (j < g.size() && name_char(g[j])) ++j;
      out += prefix;
      out.append(g, i, j - i);
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

Result<std::string> tool_call_gbnf(ToolCallFormat f, const ojson& tools, const std::string& name) {
  std::string alts, rules;
  int k = 0;
  for (const auto& t : tools) {
    const auto& fn = t["function"];
    const std::string n = fn["name"].get<std::string>();
    if (!name.empty() && n != name) continue;
    ojson params = fn.contains("parameters") && !fn["parameters"].is_null() ? fn["parameters"]
                                                                              : ojson{{"type", "object"}};
    auto g = grammar::schema_to_gbnf(params);
    if (!g.ok())
      return Status(g.status().code(), "function '" + n + "' parameters: " + g.status().message());
    const std::string prefix = "t" + std::to_string(k++) + "-";
    rules += prefix_gbnf_rules(g.value(), prefix);
    alts += std::string(alts.empty() ? "" : " | ") + "( " + lit(n) + " " + lit(shape(f).between) + " " + prefix +
            "root )";
  }
  const Shape s = shape(f);
  return "root ::= " + lit(s.open) + " ( " + alts + " ) " + lit(s.close) + "\n" + rules;
}

}  // namespace ballast::server
