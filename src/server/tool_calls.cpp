// Tool-call formats: detection from the template, parsing of replies (tool_calls.h).
#include "server/tool_calls.h"

#include <algorithm>
#include <cctype>
#include <random>

#include <nlohmann/json.hpp>

namespace ballast::server {

namespace {

using ojson = nlohmann::ordered_json;
constexpr size_t npos = std::string_view::npos;
constexpr const char* kWs = " \t\r\n";

std::string_view trim(std::string_view s) {
  size_t a = s.find_first_not_of(kWs);
  if (a == npos) return {};
  return s.substr(a, s.find_last_not_of(kWs) - a + 1);
}

const char* marker(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kHermes: return "<tool_call>";
    case ToolCallFormat::kLlama3: return "<|python_tag|>";
    case ToolCallFormat::kMistral: return "[TOOL_CALLS]";
    case ToolCallFormat::kGemma3: return "```tool_code";
  }
  return "";
}

// Formats whose call may also be a bare JSON reply (the marker is a special token that
// detokenization usually drops, or optional).
bool bare_json(ToolCallFormat f) { return f != ToolCallFormat::kHermes; }

// End (exclusive) of the JSON object or array opening at s[i]; npos when it never closes.
size_t json_extent(std::string_view s, size_t i) {
  int depth = 0;
  bool in_str = false, esc = false;
  for (size_t k = i; k < s.size(); ++k) {
    const char c = s[k];
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return k + 1;
    }
  }
  return npos;
}

class Parser {
 public:
  Parser(ToolCallFormat f, const std::vector<std::string>& names) : f_(f), names_(names) {}

  // {"name": <known>, "arguments"|"parameters": object or JSON-object string (or absent)}.
  bool call(const ojson& o) {
    if (!o.is_object()) return false;
    auto n = o.find("name");
    if (n == o.end() || !n->is_string()) return false;
    const std::string name = n->get<std::string>();
    if (std::find(names_.begin(), names_.end(), name) == names_.end()) return false;
    ojson args = ojson::object();
    auto a = o.find("arguments");
    if (a == o.end()) a = o.find("parameters");
    if (a != o.end()) {
      if (a->is_string()) args = ojson::parse(a->get<std::string>(), nullptr, false);
      else args = *a;
      if (!args.is_object()) return false;
    }
    calls.push_back({new_tool_call_id(f_), name, args.dump()});
    return true;
  }

  // All of s: JSON objects or arrays of them, separated by whitespace, ';' or ','.
  bool json_calls(std::string_view s) {
    s = trim(s);
    if (s.empty()) return false;
    for (size_t i = 0; i < s.size();) {
      if (s[i] != '{' && s[i] != '[') return false;
      const size_t e = json_extent(s, i);
      if (e == npos) return false;
      const std::string_view one = s.substr(i, e - i);
      ojson v = ojson::parse(one.begin(), one.end(), nullptr, false);
      if (v.is_discarded() || (v.is_array() && v.empty())) return false;
      if (v.is_array()) {
        for (const auto& x : v)
          if (!call(x)) return false;
      } else if (!call(v)) {
        return false;
      }
      i = e;
      while (i < s.size() && (std::string_view(kWs).find(s[i]) != npos || s[i] == ';' || s[i] == ',')) ++i;
    }
    return true;
  }

  // Python calls `name(key=literal, ...)`, separated by whitespace, ';' or ',' (Gemma's tool_code).
  bool python_calls(std::string_view s) {
    s_ = trim(s);
    i_ = 0;
    if (s_.empty()) return false;
    while (i_ < s_.size()) {
      std::string name = ident();
      if (name.empty() || !eat('(')) return false;
      ojson args = ojson::object();
      skip();
      while (!eat(')')) {
        if (!args.empty() && !eat(',')) return false;
        skip();
        if (eat(')')) break;  // trailing comma
        std::string key = ident();
        if (key.empty() || !eat('=')) return false;
        ojson v;
        if (!value(v, 0)) return false;
        args[key] = std::move(v);
        skip();
      }
      if (!call(ojson{{"name", name}, {"arguments", args}})) return false;
      while (i_ < s_.size() && (std::string_view(kWs).find(s_[i_]) != npos || s_[i_] == ';' || s_[i_] == ',')) ++i_;
    }
    return true;
  }

  std::vector<ToolCall> calls;

 private:
  void skip() {
    while (i_ < s_.size() && std::string_view(kWs).find(s_[i_]) != npos) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  std::string ident() {
    skip();
    const size_t b = i_;
    if (i_ < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_'))
      while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '-' ||
                                s_[i_] == '.'))
        ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  // Python literals: strings, numbers, True/False/None, lists, tuples, dicts with string keys.
  bool value(ojson& v, int depth) {
    if (depth > 64) return false;
    skip();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"' || c == '\'') return str(v);
    if (c == '[' || c == '(') {
      const char close = c == '[' ? ']' : ')';
      ++i_;
      v = ojson::array();
      while (!eat(close)) {
        if (!v.empty() && !eat(',')) return false;
        if (eat(close)) break;
        ojson x;
        if (!value(x, depth + 1)) return false;
        v.push_back(std::move(x));
      }
      return true;
    }
    if (c == '{') {
      ++i_;
      v = ojson::object();
      while (!eat('}')) {
        if (!v.empty() && !eat(',')) return false;
        if (eat('}')) break;
        ojson k, x;
        skip();
        if (i_ >= s_.size() || (s_[i_] != '"' && s_[i_] != '\'') || !str(k) || !eat(':') || !value(x, depth + 1))
          return false;
        v[k.get<std::string>()] = std::move(x);
      }
      return true;
    }
    std::string word = ident();
    if (word == "True" || word == "False") return v = (word == "True"), true;
    if (word == "None") return v = nullptr, true;
    if (!word.empty()) return false;
    size_t b = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || std::string_view("+-.eE").find(s_[i_]) != npos))
      ++i_;
    const std::string_view num = s_.substr(b, i_ - b);
    v = ojson::parse(num.begin(), num.end(), nullptr, false);
    return !num.empty() && v.is_number();
  }
  bool str(ojson& v) {
    const char q = s_[i_++];
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      char c = s_[i_++];
      if (c == '\\' && i_ < s_.size()) {
        const char e = s_[i_++];
        c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      }
      out += c;
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    v = out;
    return true;
  }

  ToolCallFormat f_;
  const std::vector<std::string>& names_;
  std::string_view s_;
  size_t i_ = 0;
};

// Blocks open..close (the last may be unterminated) holding calls; the text around them is content.
ParsedReply fenced(std::string_view text, std::string_view open, std::string_view close, ToolCallFormat f,
                   const std::vector<std::string>& names) {
  Parser p(f, names);
  std::string content;
  size_t i = 0;
  while (i < text.size()) {
    const size_t a = text.find(open, i);
    if (a == npos) {
      content += text.substr(i);
      break;
    }
    content += text.substr(i, a - i);
    const size_t body = a + open.size();
    const size_t b = text.find(close, body);
    const std::string_view inner = text.substr(body, (b == npos ? text.size() : b) - body);
    if (!p.json_calls(inner) && !(f == ToolCallFormat::kGemma3 && p.python_calls(inner))) return {std::string(text), {}};
    i = b == npos ? text.size() : b + close.size();
  }
  if (p.calls.empty()) return {std::string(text), {}};
  return {std::string(trim(content)), std::move(p.calls)};
}

// An optional marker, then nothing but calls as JSON; text before the marker is content.
ParsedReply marked_json(std::string_view text, std::string_view mark, ToolCallFormat f,
                        const std::vector<std::string>& names) {
  Parser p(f, names);
  const size_t m = text.find(mark);
  const std::string_view before = m == npos ? std::string_view() : text.substr(0, m);
  const std::string_view body = m == npos ? text : text.substr(m + mark.size());
  if (!p.json_calls(body)) return {std::string(text), {}};
  return {std::string(trim(before)), std::move(p.calls)};
}

// Start of the longest suffix of s that is a proper prefix of m (s.size() when none).
size_t partial_marker(std::string_view s, std::string_view m) {
  for (size_t k = std::min(s.size(), m.size() - 1); k > 0; --k)
    if (s.substr(s.size() - k) == m.substr(0, k)) return s.size() - k;
  return s.size();
}

}  // namespace

const char* tool_call_format_name(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kHermes: return "hermes";
    case ToolCallFormat::kLlama3: return "llama3";
    case ToolCallFormat::kMistral: return "mistral";
    case ToolCallFormat::kGemma3: return "gemma3";
  }
  return "?";
}

ToolCallFormat detect_tool_call_format(std::string_view src) {
  if (src.find("<tool_call>") != npos) return ToolCallFormat::kHermes;
  if (src.find("[TOOL_CALLS]") != npos) return ToolCallFormat::kMistral;
  if (src.find("tool_code") != npos) return ToolCallFormat::kGemma3;
  return ToolCallFormat::kLlama3;
}

std::string new_tool_call_id(ToolCallFormat f) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kAlnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const bool mistral = f == ToolCallFormat::kMistral;
  std::string id = mistral ? "" : "call_";
  for (int i = 0; i < (mistral ? 9 : 24); ++i) id += kAlnum[rng() % 62];
  return id;
}

ParsedReply parse_tool_calls(std::string_view text, ToolCallFormat f, const std::vector<std::string>& names) {
  switch (f) {
    case ToolCallFormat::kHermes: return fenced(text, "<tool_call>", "</tool_call>", f, names);
    case ToolCallFormat::kGemma3:
      if (text.find(marker(f)) != npos) return fenced(text, marker(f), "```", f, names);
      return marked_json(text, "", f, names);
    default: return marked_json(text, marker(f), f, names);
  }
}

std::string ToolCallStreamer::push(std::string_view delta) {
  held_ += delta;
  if (started_) return {};
  if (!emitted_ && bare_json(f_)) {
    const size_t k = held_.find_first_not_of(kWs);
    if (k == npos) return {};  // only whitespace yet: a bare call may still open
    if (held_[k] == '{' || held_[k] == '[') {
      started_ = true;
      return {};
    }
  }
  const std::string_view m = marker(f_);
  size_t keep = held_.find(m);
  if (keep != npos) started_ = true;
  else keep = partial_marker(held_, m);
  std::string out = held_.substr(0, keep);
  held_.erase(0, keep);
  if (out.find_first_not_of(kWs) != npos) emitted_ = true;
  return out;
}

ParsedReply ToolCallStreamer::finish() {
  ParsedReply r;
  if (started_) r = parse_tool_calls(held_, f_, names_);
  else r.content = held_;
  held_.clear();
  return r;
}

}  // namespace ballast::server
