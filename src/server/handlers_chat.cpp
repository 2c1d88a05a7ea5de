// POST /v1/chat/completions: messages rendered with the model's chat template (content
// tokenized as text), answered as chat.completion or streamed chat.completion.chunk.
#include <chrono>

#include "core/log.h"
#include "server/json_body.h"
#include "server/server.h"
#include "server/sse.h"
#include "server/tool_calls.h"
#include "server/tool_grammar.h"

namespace ballast::server {

namespace {

using json = nlohmann::json;

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json chat_logprobs(const tokenizer::Tokenizer& tok, const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const auto& lp : lps) {
    std::string t = token_text(tok, lp.id);
    json top = json::array();
    for (const auto& [id, v] : lp.top) {
      std::string tt = token_text(tok, id);
      top.push_back({{"token", tt}, {"logprob", v}, {"bytes", bytes_of(tt)}});
    }
    content.push_back({{"token", t}, {"logprob", lp.logprob}, {"bytes", bytes_of(t)}, {"top_logprobs", top}});
  }
  return content;
}

// OpenAI tool_calls; streamed ones carry their index in the list.
json tool_calls_json(const std::vector<ToolCall>& calls, bool with_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = json::object();
    if (with_index) c["index"] = i;
    c["id"] = calls[i].id;
    c["type"] = "function";
    c["function"] = {{"name", calls[i].name}, {"arguments", calls[i].arguments}};
    out.push_back(std::move(c));
  }
  return out;
}

std::string trimmed(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// How this request uses tools: the call format, the names calls may use, and whether
// replies are parsed at all (tools given and tool_choice not none).
struct ToolUse {
  bool active = false;
  ToolCallFormat format = ToolCallFormat::kLlama3;
  std::vector<std::string> names;
  bool parallel = true;
};

MaybeError setup_tools(const Server& s, ChatParams& p, ToolUse& t) {
  t.active = !p.tools.is_null() && p.tool_choice.mode != ToolChoice::Mode::kNone;
  if (!t.active) return {};
  if (s.prompts->has_template() && s.prompts->template_ignores_tools())
    return bad_request("the model's chat template ignores 'tools' (it renders the same prompt with and without "
                       "them), so this model cannot be offered tools; leave 'tools' out or set tool_choice none",
                       "tools", "unsupported_parameter");
  t.format = s.prompts->tool_format();
  t.names = tool_names(p.tools);
  t.parallel = p.parallel_tool_calls;
  if (p.tool_choice.constrained()) {
    auto g = tool_call_gbnf(t.format, p.tools, p.tool_choice.name);
    if (!g.ok())
      return bad_request("'tools': " + g.status().message(), "tools",
                         g.status().code() == ErrorCode::kUnsupported ? "unsupported_parameter" : "invalid_parameter");
    p.grammar = g.value();
  }
  return {};
}

}  // namespace

void handle_chat(Server& s, const HttpRequest& req, HttpResponse& res) {
  const auto arrival = std::chrono::steady_clock::now();
  nlohmann::ordered_json body;
  if (auto e = parse_json_body(req.body, body, s.json_limits)) return send_error(res, *e);
  auto p = std::make_shared<ChatParams>();
  if (auto e = parse_chat_request(body, *p, s.limits)) return send_error(res, *e);
  if (auto e = check_model(s, p->model)) return send_error(res, *e);
  ToolUse tools;
  if (auto e = setup_tools(s, *p, tools)) return send_error(res, *e);
  auto ids = s.prompts->encode_chat(p->messages, tools.active ? p->tools : nlohmann::ordered_json(),
                                    p->template_kwargs, p->add_generation_prompt);
  if (!ids.ok()) return send_error(res, from_status(ids.status(), "messages"));
  if (auto eos = s.prompts->eos_turns())
    log::info("request.chat_eos_turns", "no chat template: " + std::to_string(p->messages.size()) +
                                            " turn(s) joined with eos " + std::to_string(*eos) + " (DialoGPT convention)");
  std::vector<std::vector<int32_t>> prompts{std::move(ids.value())};
  PreparedRequest prep;
  prep.client = req.remote;  // fair queueing is per peer address (one API key serves everyone)
  if (auto e = prepare_request(s, *p, std::move(prompts), true, prep)) return send_error(res, *e);
  const size_t n_choices = prep.seqs.size();
  const json seed = static_cast<int64_t>(prep.seed);
  auto gen = std::make_shared<Generation>(*s.loop, s.metrics, *s.rt->tok,
                                          GenerationOptions{p->stop, p->skip_special_tokens, p->logprobs,
                                                            p->clean_up_tokenization_spaces.value_or(s.cfg.clean_up_spaces)}, arrival);
  if (auto e = gen->submit(std::move(prep.seqs))) return send_error(res, *e);
  const std::string id = new_request_id("chatcmpl-");
  const std::string model = p->model.empty() ? s.model_names.front() : p->model;
  const int64_t created = unix_now();
  const tokenizer::Tokenizer& tok = *s.rt->tok;

  if (!p->stream) {
    std::vector<std::string> text(n_choices), finish(n_choices);
    std::vector<json> lps(n_choices, json::array());
    auto err = gen->run(
        [&](const ChoiceDelta& d) {
          text[d.index] += d.text;
          if (p->logprobs)
            for (auto& e : chat_logprobs(tok, d.logprobs)) lps[d.index].push_back(std::move(e));
          if (!d.finish_reason.empty()) finish[d.index] = d.finish_reason;
          return true;
        },
        req.client_gone);
    if (err) return send_error(res, *err);
    json choices = json::array();
    const auto picked = pick_choices(*gen, 1, prep.per_prompt, p->n);
    for (size_t k = 0; k < picked.size(); ++k) {
      const int c = picked[k];
      json message = {{"role", "assistant"}, {"content", text[c]}};
      if (tools.active) {
        ParsedReply r = parse_tool_calls(text[c], tools.format, tools.names);
        if (!r.calls.empty()) {
          if (!tools.parallel) r.calls.resize(1);
          const std::string rest = trimmed(r.content);
          message["content"] = rest.empty() ? json() : json(rest);
          message["tool_calls"] = tool_calls_json(r.calls, false);
          finish[c] = "tool_calls";
        }
      }
      choices.push_back({{"index", k},
                         {"message", std::move(message)},
                         {"logprobs", p->logprobs ? json{{"content", lps[c]}} : json()},
                         {"finish_reason", finish[c].empty() ? json() : json(finish[c])}});
    }
    observe_request(s, arrival);
    json out = completion_response("chat.completion", id, created, model, std::move(choices),
                                   usage_json(prep.prompt_tokens, gen->completion_tokens(), prep.truncated_tokens,
                                              gen->cached_tokens()));
    out["seed"] = seed;
    return send_json(res, out);
  }

  start_event_stream(res);
  res.stream = [&s, p, gen, id, model, created, n_choices, &tok, arrival, seed, prompt_tokens = prep.prompt_tokens,
                truncated = prep.truncated_tokens, tools](StreamSink& sink) {
    auto chunk = [&](size_t index, const json& delta, const json& logprobs, const std::string& finish) {
      json j = {{"id", id},
                {"object", "chat.completion.chunk"},
                {"created", created},
                {"model", model},
                {"system_fingerprint", nullptr},
                {"seed", seed},
                {"choices", json::array({{{"index", index},
                                          {"delta", delta},
                                          {"logprobs", logprobs},
                                          {"finish_reason", finish.empty() ? json() : json(finish)}}})}};
      if (p->include_usage) j["usage"] = nullptr;
      return sink.write(sse_event(j));
    };
    for (size_t c = 0; c < n_choices; ++c)
      if (!chunk(c, {{"role", "assistant"}, {"content", ""}}, json(), "")) return gen->cancel_all();
    std::vector<ToolCallStreamer> streamers(n_choices, ToolCallStreamer(tools.format, tools.names));
    auto err = gen->run(
        [&](const ChoiceDelta& d) {
          json lp = p->logprobs ? json{{"content", chat_logprobs(tok, d.logprobs)}} : json();
          if (!tools.active) {
            json delta = json::object();
            if (!d.text.empty()) delta["content"] = d.text;
            return chunk(d.index, delta, lp, d.finish_reason);
          }
          // Text from a call marker on is held; at the end it becomes tool_calls deltas
          // (or, when it does not parse as calls, content).
          std::vector<json> deltas;
          std::string finish = d.finish_reason;
          if (std::string out = streamers[d.index].push(d.text); !out.empty()) deltas.push_back({{"content", out}});
          if (!finish.empty()) {
            ParsedReply r = streamers[d.index].finish();
            if (!r.calls.empty() && !tools.parallel) r.calls.resize(1);
            std::string rest = r.calls.empty() ? r.content : trimmed(r.content);
            if (!rest.empty()) deltas.push_back({{"content", rest}});
            for (auto& c : tool_calls_json(r.calls, true)) deltas.push_back({{"tool_calls", json::array({c})}});
            if (!r.calls.empty()) finish = "tool_calls";
          }
          if (deltas.empty()) {
            if (lp.is_null() && finish.empty()) return true;
            deltas.push_back(json::object());
          }
          for (size_t i = 0; i < deltas.size(); ++i)
            if (!chunk(d.index, deltas[i], i == 0 ? lp : json(), i + 1 == deltas.size() ? finish : ""))
              return false;
          return true;
        },
        [&] { return sink.client_gone(); });
    json usage_chunk;
    if (p->include_usage)
      usage_chunk = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
                     {"system_fingerprint", nullptr}, {"seed", seed}, {"choices", json::array()},
                     {"usage", usage_json(prompt_tokens, gen->completion_tokens(), truncated, gen->cached_tokens())}};
    finish_stream(s, sink, err, usage_chunk, arrival);
  };
}

}  // namespace ballast::server
