// tools / tool_choice validation and tool-turn normalisation (tool_request.h).
#include "server/tool_request.h"

#include <cctype>

#include "server/json_body.h"

namespace ballast::server {

namespace {

using ojson = nlohmann::ordered_json;

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (unsigned char c : n)
    if (!std::isalnum(c) && c != '_' && c != '-') return false;
  return true;
}

MaybeError check_tool(const ojson& t, size_t i, std::set<std::string>& names) {
  const std::string w = "tools[" + std::to_string(i) + "]";
  if (!t.is_object()) return bad_request("'" + w + "' must be an object", "tools");
  if (!t.contains("type") || t["type"] != "function")
    return bad_request("'" + w + ".type' must be \"function\"", "tools");
  auto f = t.find("function");
  if (f == t.end() || !f->is_object()) return bad_request("'" + w + ".function' must be an object", "tools");
  auto n = f->find("name");
  if (n == f->end() || !n->is_string() || !valid_name(n->get<std::string>()))
    return bad_request("'" + w + ".function.name' must be 1-64 letters, digits, '_' or '-'", "tools");
  if (!names.insert(n->get<std::string>()).second)
    return bad_request("'" + w + ".function.name' repeats the function '" + n->get<std::string>() + "'", "tools");
  if (auto d = f->find("description"); d != f->end() && !d->is_null() && !d->is_string())
    return bad_request("'" + w + ".function.description' must be a string", "tools");
  if (auto p = f->find("parameters"); p != f->end() && !p->is_null() && !p->is_object())
    return bad_request("'" + w + ".function.parameters' must be a JSON-schema object", "tools");
  return {};
}

MaybeError parse_choice(const ojson& v, const std::set<std::string>& names, ToolChoice& c) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "none") c.mode = ToolChoice::Mode::kNone;
    else if (s == "auto") c.mode = ToolChoice::Mode::kAuto;
    else if (s == "required") c.mode = ToolChoice::Mode::kRequired;
    else
      return bad_request("'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": "
                         "{\"name\": ...}}; got '" + s.substr(0, 64) + "'",
                         "tool_choice");
  } else if (v.is_object() && v.value("type", "") == "function" && v.contains("function") &&
             v["function"].is_object() && v["function"].contains("name") && v["function"]["name"].is_string()) {
    c.mode = ToolChoice::Mode::kNamed;
    c.name = v["function"]["name"].get<std::string>();
    if (!names.count(c.name))
      return bad_request("'tool_choice' names the function '" + c.name.substr(0, 64) + "', which is not in 'tools'",
                         "tool_choice");
  } else {
    return bad_request("'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": "
                       "{\"name\": ...}}; got " + brief_json(v),
                       "tool_choice");
  }
  if (c.constrained() && names.empty())
    return bad_request("'tool_choice' " + (c.name.empty() ? std::string("required") : "'" + c.name + "'") +
                           " needs 'tools'",
                       "tool_choice");
  return {};
}

}  // namespace

MaybeError parse_tools(const ojson& body, ojson& tools, ToolChoice& choice, bool& parallel,
                       std::set<std::string>& allowed) {
  for (const char* k : {"tools", "tool_choice", "parallel_tool_calls"}) allowed.insert(k);
  std::set<std::string> names;
  tools = nullptr;
  if (auto it = body.find("tools"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return bad_request("'tools' must be a list", "tools");
    for (size_t i = 0; i < it->size(); ++i)
      if (auto e = check_tool((*it)[i], i, names)) return e;
    if (!it->empty()) tools = *it;
  }
  choice = ToolChoice{};
  choice.mode = names.empty() ? ToolChoice::Mode::kNone : ToolChoice::Mode::kAuto;
  if (auto it = body.find("tool_choice"); it != body.end() && !it->is_null())
    if (auto e = parse_choice(*it, names, choice)) return e;
  if (auto it = body.find("parallel_tool_calls"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return bad_request("'parallel_tool_calls' must be a boolean", "parallel_tool_calls");
    parallel = it->get<bool>();
  }
  return {};
}

MaybeError normalize_tool_turn(ojson& msg, size_t i) {
  const std::string w = "messages[" + std::to_string(i) + "]";
  const std::string role = msg.value("role", "");
  if (role == "tool") {
    if (auto id = msg.find("tool_call_id"); id != msg.end() && !id->is_null() && !id->is_string())
      return bad_request("'" + w + ".tool_call_id' must be a string", "messages");
    return {};
  }
  auto tc = msg.find("tool_calls");
  if (tc == msg.end() || tc->is_null()) return {};
  if (role != "assistant") return bad_request("'" + w + ".tool_calls' is only allowed on assistant messages", "messages");
  if (!tc->is_array()) return bad_request("'" + w + ".tool_calls' must be a list", "messages");
  for (size_t j = 0; j < tc->size(); ++j) {
    auto& call = (*tc)[j];
    const std::string cw = w + ".tool_calls[" + std::to_string(j) + "]";
    if (!call.is_object()) return bad_request("'" + cw + "' must be an object", "messages");
    if (auto t = call.find("type"); t != call.end() && !t->is_null() && *t != "function")
      return bad_request("'" + cw + ".type' must be \"function\"", "messages");
    if (auto id = call.find("id"); id != call.end() && !id->is_null() && !id->is_string())
      return bad_request("'" + cw + ".id' must be a string", "messages");
    auto f = call.find("function");
    if (f == call.end() || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string())
      return bad_request("'" + cw + ".function.name' is required", "messages");
    auto a = f->find("arguments");
    if (a == f->end() || !(a->is_string() || a->is_object()))
      return bad_request("'" + cw + ".function.arguments' must be a JSON string", "messages");
    // Templates print arguments with tojson or expect a mapping (transformers passes dicts).
    if (a->is_string()) {
      ojson parsed = ojson::parse(a->get<std::string>(), nullptr, false);
      if (parsed.is_object()) *a = std::move(parsed);
    }
  }
  if (auto c = msg.find("content"); c == msg.end() || c->is_null()) msg["content"] = "";
  return {};
}

std::vector<std::string> tool_names(const ojson& tools) {
  std::vector<std::string> out;
  if (tools.is_array())
    for (const auto& t : tools) out.push_back(t["function"]["name"].get<std::string>());
  return out;
}

}  // namespace ballast::server
