// Request parsing and validation for the OpenAI endpoints (pure JSON, no model).
#include "server/openai_schema.h"

#include "chat/chat_template.h"
#include "server/json_body.h"
#include "server/structured_output.h"

#include <cmath>
#include <functional>
#include <set>

namespace ballast::server {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

template <class J>
MaybeError get_bool(const J& body, const char* key, bool& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_boolean()) return bad_request(std::string("'") + key + "' must be a boolean, got " + type_name(*it), key);
  out = it->template get<bool>();
  return {};
}

template <class J>
MaybeError get_number(const J& body, const char* key, std::optional<double>& out, double lo, double hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_number()) return bad_request(std::string("'") + key + "' must be a number, got " + type_name(*it), key);
  double v = it->template get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return bad_request(std::string("'") + key + "' must be in [" + json(lo).dump() + ", " + json(hi).dump() + "], got " +
                           brief_json(*it),
                       key);
  out = v;
  return {};
}

template <class J>
MaybeError get_int(const J& body, const char* key, std::optional<int64_t>& out, int64_t lo, int64_t hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  bool integral = it->is_number_integer() ||
                  (it->is_number_float() && std::floor(it->template get<double>()) == it->template get<double>() &&
                   std::fabs(it->template get<double>()) < 9e15);
  if (!integral) return bad_request(std::string("'") + key + "' must be an integer, got " + brief_json(*it), key);
  if (it->is_number_unsigned() && it->template get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    return bad_request(std::string("'") + key + "' is out of range: " + brief_json(*it), key);
  int64_t v = it->is_number_float() ? static_cast<int64_t>(it->template get<double>()) : it->template get<int64_t>();
  if (v < lo || v > hi)
    return bad_request(std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           "], got " + std::to_string(v),
                       key);
  out = v;
  return {};
}

// Fields of both endpoints. `allowed` collects the keys this function understands.
template <class J>
MaybeError parse_common(const J& body, CommonParams& p, const SchemaLimits& lim, std::set<std::string>& allowed) {
  for (const char* k : {"model", "n", "stream", "stream_options", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                        "presence_penalty", "frequency_penalty", "repetition_penalty", "seed", "logit_bias", "stop",
                        "stop_token_ids", "ignore_eos", "user", "truncate_prompt_tokens", "skip_special_tokens", "best_of",
                        "clean_up_tokenization_spaces"})
    allowed.insert(k);
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return bad_request("'model' must be a string", "model");
    p.model = it->template get<std::string>();
  }
  std::optional<int64_t> n;
  if (auto e = get_int(body, "n", n, 1, lim.max_n)) return e;
  if (n) p.n = *n;
  if (auto e = get_bool(body, "stream", p.stream)) return e;
  if (auto e = get_int(body, "best_of", p.best_of, 1, lim.max_n)) return e;
  if (p.best_of && *p.best_of < p.n)
    return bad_request("'best_of' (" + std::to_string(*p.best_of) + ") must be at least 'n' (" + std::to_string(p.n) + ")",
                       "best_of");
  if (p.best_of && *p.best_of > p.n && p.stream)
    return bad_request("'best_of' greater than 'n' cannot be streamed: the best choices are known only at the end",
                       "best_of");
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return bad_request("'stream_options' must be an object", "stream_options");
    if (!p.stream) return bad_request("'stream_options' is only allowed when 'stream' is true", "stream_options");
    for (auto f = it->begin(); f != it->end(); ++f)
      if (f.key() != "include_usage")
        return bad_request("unsupported parameter 'stream_options." + f.key() + "'", "stream_options." + f.key());
    if (auto e = get_bool(*it, "include_usage", p.include_usage)) return e;
  }
  if (auto e = parse_structured_output(body, p.grammar, allowed)) return e;
  if (auto e = get_int(body, "max_tokens", p.max_tokens, 1, INT32_MAX)) return e;
  if (auto e = get_number(body, "temperature", p.temperature, 0.0, 100.0)) return e;
  if (auto e = get_number(body, "top_p", p.top_p, 0.0, 1.0)) return e;
  if (p.top_p && *p.top_p <= 0.0) return bad_request("'top_p' must be in (0, 1]", "top_p");
  if (auto e = get_int(body, "top_k", p.top_k, -1, INT32_MAX)) return e;
  if (p.top_k && *p.top_k < 0) p.top_k = 0;  // -1 means off, as in vLLM
  if (auto e = get_number(body, "min_p", p.min_p, 0.0, 1.0)) return e;
  if (auto e = get_number(body, "presence_penalty", p.presence_penalty, -2.0, 2.0)) return e;
  if (auto e = get_number(body, "frequency_penalty", p.frequency_penalty, -2.0, 2.0)) return e;
  if (auto e = get_number(body, "repetition_penalty", p.repetition_penalty, 0.0, 100.0)) return e;
  if (p.repetition_penalty && *p.repetition_penalty <= 0.0)
    return bad_request("'repetition_penalty' must be > 0", "repetition_penalty");
  if (auto e = get_int(body, "seed", p.seed, INT64_MIN, INT64_MAX)) return e;
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return bad_request("'logit_bias' must be an object mapping token ids to biases", "logit_bias");
    p.logit_bias = json::object();
    for (auto f = it->begin(); f != it->end(); ++f) {
      if (!f.value().is_number())
        return bad_request("'logit_bias[" + f.key() + "]' must be a number", "logit_bias");
      double b = f.value().template get<double>();
      if (!std::isfinite(b) || b < -100 || b > 100)
        return bad_request("'logit_bias[" + f.key() + "]' must be in [-100, 100]", "logit_bias");
      p.logit_bias[f.key()] = b;
    }
  }
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) p.stop.push_back(it->template get<std::string>());
    else if (it->is_array()) {
      for (const auto& s : *it) {
        if (!s.is_string()) return bad_request("'stop' must be a string or a list of strings", "stop");
        p.stop.push_back(s.template get<std::string>());
      }
    } else return bad_request("'stop' must be a string or a list of strings", "stop");
    if (p.stop.size() > lim.max_stop)
      return bad_request("'stop' has " + std::to_string(p.stop.size()) + " entries; at most " +
                             std::to_string(lim.max_stop) + " are allowed", "stop");
    for (const auto& s : p.stop)
      if (s.empty()) return bad_request("'stop' strings must not be empty", "stop");
  }
  if (auto it = body.find("stop_token_ids"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return bad_request("'stop_token_ids' must be a list of token ids", "stop_token_ids");
    p.stop_token_ids = json::parse(brief_json(*it));
  }
  if (auto e = get_bool(body, "ignore_eos", p.ignore_eos)) return e;
  if (auto e = get_bool(body, "skip_special_tokens", p.skip_special_tokens)) return e;
  if (auto it = body.find("clean_up_tokenization_spaces"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean())
      return bad_request("'clean_up_tokenization_spaces' must be a boolean", "clean_up_tokenization_spaces");
    p.clean_up_tokenization_spaces = it->template get<bool>();
  }
  if (auto e = get_int(body, "truncate_prompt_tokens", p.truncate_prompt_tokens, 1, INT32_MAX)) return e;
  if (auto it = body.find("user"); it != body.end() && !it->is_null() && !it->is_string())
    return bad_request("'user' must be a string", "user");
  return {};
}

template <class J>
MaybeError reject_unknown(const J& body, const std::set<std::string>& allowed) {
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!allowed.count(it.key()))
      return bad_request("unsupported parameter '" + it.key() + "'", it.key(), "unsupported_parameter");
  return {};
}

// Fields OpenAI defines that we accept only at their neutral value.
template <class J>
MaybeError neutral_only(const J& body, const char* key, const std::function<bool(const J&)>& neutral,
                        std::set<std::string>& allowed) {
  allowed.insert(key);
  auto it = body.find(key);
  if (it == body.end() || it->is_null() || neutral(*it)) return {};
  return bad_request(std::string("unsupported value for parameter '") + key + "': " + brief_json(*it), key,
                     "unsupported_parameter");
}

MaybeError normalize_content(ojson& msg, size_t i) {
  std::string where = "messages[" + std::to_string(i) + "].content";
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null() || it->is_string()) return {};
  if (!it->is_array()) return bad_request("'" + where + "' must be a string or a list of content parts", "messages");
  std::string text;
  size_t j = 0;
  for (const auto& part : *it) {
    std::string pw = where + "[" + std::to_string(j++) + "]";
    if (!part.is_object()) return bad_request("'" + pw + "' must be an object", "messages");
    auto t = part.find("type");
    if (t == part.end() || !t->is_string()) return bad_request("'" + pw + ".type' is required", "messages");
    if (*t != "text")
      return bad_request("unsupported content part type '" + t->get<std::string>() + "' in '" + pw +
                             "' (only text is supported)",
                         "messages", "unsupported_parameter");
    auto tx = part.find("text");
    if (tx == part.end() || !tx->is_string()) return bad_request("'" + pw + ".text' must be a string", "messages");
    if (!text.empty()) text += "\n";
    text += tx->get<std::string>();
  }
  *it = text;
  return {};
}

}  // namespace

engine::SamplingParams CommonParams::sampling(engine::SamplingParams d) const {
  if (temperature) d.temperature = *temperature;
  if (top_p) d.top_p = *top_p;
  if (top_k) d.top_k = *top_k;
  if (min_p) d.min_p = *min_p;
  if (presence_penalty) d.presence_penalty = *presence_penalty;
  if (frequency_penalty) d.frequency_penalty = *frequency_penalty;
  if (repetition_penalty) d.repetition_penalty = *repetition_penalty;
  if (seed) d.seed = static_cast<uint64_t>(*seed);
  d.top_logprobs = top_logprobs;
  return d;
}

MaybeError parse_completion_request(const json& body, CompletionParams& p, const SchemaLimits& lim) {
  if (!body.is_object()) return bad_request("request body must be a JSON object");
  std::set<std::string> allowed{"prompt", "echo", "logprobs"};
  if (auto e = parse_common(body, p, lim, allowed)) return e;
  auto is_empty_str = [](const json& v) { return v.is_string() && v.get<std::string>().empty(); };
  if (auto e = neutral_only<json>(body, "suffix", is_empty_str, allowed)) return e;
  if (auto e = reject_unknown(body, allowed)) return e;
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return bad_request("'prompt' is required", "prompt");
  auto is_id = [](const json& v) { return v.is_number(); };
  if (it->is_string()) {
    p.prompts.push_back({false, it->get<std::string>(), {}});
  } else if (it->is_array()) {
    if (it->empty()) return bad_request("'prompt' must not be empty", "prompt");
    const json& first = (*it)[0];
    if (is_id(first)) {
      p.prompts.push_back({true, {}, *it});  // one list of ids; validation names bad entries
    } else {
      for (const auto& e : *it) {
        if (e.is_string()) p.prompts.push_back({false, e.get<std::string>(), {}});
        else if (e.is_array()) {
          if (e.empty()) return bad_request("'prompt' contains an empty list of token ids", "prompt");
          p.prompts.push_back({true, {}, e});
        } else
          return bad_request("'prompt' must be a string, a list of strings, a list of token ids or a list of such lists",
                             "prompt");
      }
    }
  } else {
    return bad_request("'prompt' must be a string, a list of strings, a list of token ids or a list of such lists",
                       "prompt");
  }
  if (p.prompts.size() > lim.max_prompts)
    return bad_request("'prompt' has " + std::to_string(p.prompts.size()) + " prompts; at most " +
                           std::to_string(lim.max_prompts) + " are allowed", "prompt");
  if (auto e = get_bool(body, "echo", p.echo)) return e;
  std::optional<int64_t> lp;
  if (auto e = get_int(body, "logprobs", lp, 0, lim.max_top_logprobs)) return e;
  if (lp) {
    p.logprobs = true;
    p.top_logprobs = static_cast<int>(*lp);
  }
  return {};
}

MaybeError parse_chat_request(const ojson& body, ChatParams& p, const SchemaLimits& lim) {
  if (!body.is_object()) return bad_request("request body must be a JSON object");
  std::set<std::string> allowed{"messages", "max_completion_tokens", "logprobs", "top_logprobs",
                                "chat_template_kwargs", "add_generation_prompt"};
  if (auto e = parse_common(body, p, lim, allowed)) return e;
  auto is_false = [](const ojson& v) { return v.is_boolean() && !v.get<bool>(); };
  if (auto e = parse_tools(body, p.tools, p.tool_choice, p.parallel_tool_calls, allowed)) return e;
  if (p.tool_choice.constrained() && !p.grammar.empty())
    return bad_request("'tool_choice' required or a named function cannot be combined with 'response_format' or "
                       "'grammar'", "tool_choice");
  if (auto e = neutral_only<ojson>(body, "store", is_false, allowed)) return e;
  if (auto e = reject_unknown(body, allowed)) return e;
  std::optional<int64_t> mct;
  if (auto e = get_int(body, "max_completion_tokens", mct, 1, INT32_MAX)) return e;
  if (mct) {
    if (p.max_tokens && *p.max_tokens != *mct)
      return bad_request("'max_tokens' and 'max_completion_tokens' disagree", "max_completion_tokens");
    p.max_tokens = mct;
  }
  if (auto e = get_bool(body, "logprobs", p.logprobs)) return e;
  std::optional<int64_t> tl;
  if (auto e = get_int(body, "top_logprobs", tl, 0, lim.max_top_logprobs)) return e;
  if (tl) {
    if (!p.logprobs) return bad_request("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
    p.top_logprobs = static_cast<int>(*tl);
  }
  if (auto e = get_bool(body, "add_generation_prompt", p.add_generation_prompt)) return e;
  if (auto it = body.find("chat_template_kwargs"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return bad_request("'chat_template_kwargs' must be an object", "chat_template_kwargs");
    for (auto k = it->begin(); k != it->end(); ++k)
      if (chat::is_reserved_variable(k.key()))
        return bad_request("'chat_template_kwargs." + k.key() + "' is not allowed: the server sets the template variable '" +
                               k.key() + "' itself",
                           "chat_template_kwargs", "invalid_parameter");
    p.template_kwargs = *it;
  }
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return bad_request("'messages' is required", "messages");
  if (!it->is_array() || it->empty()) return bad_request("'messages' must be a non-empty list", "messages");
  if (it->size() > lim.max_messages)
    return bad_request("'messages' has " + std::to_string(it->size()) + " messages; at most " +
                           std::to_string(lim.max_messages) + " are allowed (--max-messages)",
                       "messages");
  p.messages = *it;
  static const std::set<std::string> roles{"system", "developer", "user", "assistant", "tool"};
  for (size_t i = 0; i < p.messages.size(); ++i) {
    auto& m = p.messages[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad_request("'" + where + "' must be an object", "messages");
    auto r = m.find("role");
    if (r == m.end() || !r->is_string()) return bad_request("'" + where + ".role' is required", "messages");
    if (!roles.count(r->get<std::string>()))
      return bad_request("'" + where + ".role' must be one of system, developer, user, assistant, tool; got '" +
                             r->get<std::string>() + "'", "messages");
    auto c = m.find("content");
    bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if ((c == m.end() || c->is_null()) && !(*r == "assistant" && has_tool_calls))
      return bad_request("'" + where + ".content' is required", "messages");
    if (auto e = normalize_content(m, i)) return e;
    if (auto e = normalize_tool_turn(m, i)) return e;
  }
  return {};
}

}  // namespace ballast::server
