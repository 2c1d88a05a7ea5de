// POST /v1/chat/completions: messages rendered with the model's chat template (content
// tokenized as text), answered as chat.completion or streamed chat.completion.chunk.
#include <chrono>

#include "core/log.h"
#include "server/json_body.h"
#include "server/server.h"
#include "server/sse.h"

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

}  // namespace

void handle_chat(Server& s, const HttpRequest& req, HttpResponse& res) {
  const auto arrival = std::chrono::steady_clock::now();
  nlohmann::ordered_json body;
  if (auto e = parse_json_body(req.body, body, s.json_limits)) return send_error(res, *e);
  auto p = std::make_shared<ChatParams>();
  if (auto e = parse_chat_request(body, *p, s.limits)) return send_error(res, *e);
  if (auto e = check_model(s, p->model)) return send_error(res, *e);
  auto ids = s.prompts->encode_chat(p->messages, p->tools, p->template_kwargs, p->add_generation_prompt);
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
      choices.push_back({{"index", k},
                         {"message", {{"role", "assistant"}, {"content", text[c]}}},
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
                truncated = prep.truncated_tokens](StreamSink& sink) {
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
    auto err = gen->run(
        [&](const ChoiceDelta& d) {
          json delta = json::object();
          if (!d.text.empty()) delta["content"] = d.text;
          json lp = p->logprobs ? json{{"content", chat_logprobs(tok, d.logprobs)}} : json();
          return chunk(d.index, delta, lp, d.finish_reason);
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
