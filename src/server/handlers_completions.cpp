// POST /v1/completions: prompts (text, ids, lists of either) -> text_completion objects,
// streamed as server-sent events or returned whole.
#include <chrono>

#include "server/json_body.h"
#include "server/server.h"
#include "server/sse.h"
#include "vocab/audit.h"

namespace ballast::server {

namespace {

using json = nlohmann::json;

// Legacy completions logprobs: parallel arrays plus text offsets.
struct LegacyLogprobs {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  size_t offset = 0;
  // The echoed prompt's entries (offsets from 0): its first token has no logprob.
  void add_prompt(const tokenizer::Tokenizer& tok, int32_t first, const std::vector<TokenLogprob>& lps) {
    const size_t after = offset;
    offset = 0;
    std::string t = token_text(tok, first);
    tokens.push_back(t);
    token_logprobs.push_back(nullptr);
    top.push_back(nullptr);
    offsets.push_back(offset);
    offset += t.size();
    add(tok, lps);
    offset = after;
  }
  void add(const tokenizer::Tokenizer& tok, const std::vector<TokenLogprob>& lps) {
    for (const auto& lp : lps) {
      std::string t = token_text(tok, lp.id);
      tokens.push_back(t);
      token_logprobs.push_back(lp.logprob);
      json m = json::object();
      for (const auto& [id, v] : lp.top) m[token_text(tok, id)] = v;
      top.push_back(m);
      offsets.push_back(offset);
      offset += t.size();
    }
  }
  json to_json() const {
    return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
  }
};

}  // namespace

void handle_completions(Server& s, const HttpRequest& req, HttpResponse& res) {
  const auto arrival = std::chrono::steady_clock::now();
  json body;
  if (auto e = parse_json_body(req.body, body, s.json_limits)) return send_error(res, *e);
  auto p = std::make_shared<CompletionParams>();
  if (auto e = parse_completion_request(body, *p, s.limits)) return send_error(res, *e);
  if (auto e = check_model(s, p->model)) return send_error(res, *e);
  std::vector<std::vector<int32_t>> ids;
  for (const auto& pr : p->prompts) {
    if (pr.is_ids) {
      Status st = vocab::validate_ids(pr.ids, s.rt->audit, "prompt");
      if (!st.ok()) return send_error(res, from_status(st, "prompt"));
      std::vector<int32_t> v;
      for (const auto& x : pr.ids) v.push_back(static_cast<int32_t>(x.get<int64_t>()));
      ids.push_back(std::move(v));
    } else {
      auto r = s.prompts->encode_text(pr.text, true);
      if (!r.ok()) return send_error(res, from_status(r.status(), "prompt"));
      ids.push_back(std::move(r.value()));
    }
  }
  if (p->echo && p->logprobs && s.rt->model().encoder_decoder())
    return send_error(res, bad_request("'echo' with 'logprobs' is not available for an encoder-decoder model: its "
                                       "prompt is the encoder input, which has no token probabilities",
                                       "echo", "unsupported_parameter"));
  PreparedRequest prep;
  prep.client = req.remote;  // fair queueing is per peer address (one API key serves everyone)
  if (auto e = prepare_request(s, *p, std::move(ids), false, prep)) return send_error(res, *e);
  const bool prompt_lps = p->echo && p->logprobs;
  if (prompt_lps)
    for (auto& sq : prep.seqs)
      if (sq.leader) sq.req.prompt_logprobs = p->top_logprobs;
  std::vector<int32_t> first_ids;  // each prompt's first token (echo logprobs)
  for (const auto& pr : prep.prompts) first_ids.push_back(pr.front());
  // Echo text per prompt: the prompt as given, or the decoded ids.
  std::vector<std::string> echo(prep.prompts.size());
  if (p->echo)
    for (size_t i = 0; i < prep.prompts.size(); ++i) {
      if (!p->prompts[i].is_ids && prep.truncated_tokens == 0) echo[i] = p->prompts[i].text;
      else if (auto d = s.rt->tok->decode_with(prep.prompts[i], false, false); d.ok()) echo[i] = d.value();
    }
  const size_t n_choices = prep.seqs.size();
  const int64_t n_per_prompt = prep.per_prompt;
  const json seed = static_cast<int64_t>(prep.seed);
  auto gen = std::make_shared<Generation>(*s.loop, s.metrics, *s.rt->tok,
                                          GenerationOptions{p->stop, p->skip_special_tokens, p->logprobs,
                                                            p->clean_up_tokenization_spaces.value_or(s.cfg.clean_up_spaces)}, arrival);
  if (auto e = gen->submit(std::move(prep.seqs))) return send_error(res, *e);
  const std::string id = new_request_id("cmpl-");
  const std::string model = p->model.empty() ? s.model_names.front() : p->model;
  const int64_t created = unix_now();
  const tokenizer::Tokenizer& tok = *s.rt->tok;

  if (!p->stream) {
    std::vector<std::string> text(n_choices);
    std::vector<std::string> finish(n_choices);
    std::vector<LegacyLogprobs> lps(n_choices);
    for (size_t c = 0; c < n_choices; ++c) {
      text[c] = echo[c / n_per_prompt];
      lps[c].offset = text[c].size();
    }
    auto err = gen->run(
        [&](const ChoiceDelta& d) {
          if (d.has_prompt_logprobs) {
            lps[d.index].add_prompt(tok, first_ids[d.index / n_per_prompt], d.prompt_logprobs);
            return true;
          }
          text[d.index] += d.text;
          if (p->logprobs) lps[d.index].add(tok, d.logprobs);
          if (!d.finish_reason.empty()) finish[d.index] = d.finish_reason;
          return true;
        },
        req.client_gone);
    if (err) return send_error(res, *err);
    json choices = json::array();
    const auto picked = pick_choices(*gen, prep.prompts.size(), n_per_prompt, p->n);
    for (size_t k = 0; k < picked.size(); ++k) {
      const int c = picked[k];
      choices.push_back({{"index", k},
                         {"text", text[c]},
                         {"logprobs", p->logprobs ? lps[c].to_json() : json()},
                         {"finish_reason", finish[c].empty() ? json() : json(finish[c])}});
    }
    observe_request(s, arrival);
    json body = completion_response("text_completion", id, created, model, std::move(choices),
                                    usage_json(prep.prompt_tokens, gen->completion_tokens(), prep.truncated_tokens,
                                               gen->cached_tokens()));
    body["seed"] = seed;
    return send_json(res, body);
  }

  start_event_stream(res);
  res.stream = [&s, p, gen, id, model, created, echo, n_choices, n_per_prompt, &tok, arrival, seed, prompt_lps, first_ids,
                prompt_tokens = prep.prompt_tokens, truncated = prep.truncated_tokens](StreamSink& sink) {
    auto chunk = [&](size_t index, const std::string& text, const json& logprobs, const std::string& finish) {
      json j = {{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", model},
                {"system_fingerprint", nullptr},
                {"seed", seed},
                {"choices", json::array({{{"index", index},
                                          {"text", text},
                                          {"logprobs", logprobs},
                                          {"finish_reason", finish.empty() ? json() : json(finish)}}})}};
      if (p->include_usage) j["usage"] = nullptr;
      return sink.write(sse_event(j));
    };
    std::vector<size_t> offsets(n_choices, 0);
    if (p->echo && !prompt_lps)  // with logprobs: once the prompt's logprobs are known
      for (size_t c = 0; c < n_choices; ++c) {
        offsets[c] = echo[c / n_per_prompt].size();
        if (!chunk(c, echo[c / n_per_prompt], json(), "")) return gen->cancel_all();
      }
    auto err = gen->run(
        [&](const ChoiceDelta& d) {
          if (d.has_prompt_logprobs) {
            LegacyLogprobs l;
            l.add_prompt(tok, first_ids[d.index / n_per_prompt], d.prompt_logprobs);
            offsets[d.index] = echo[d.index / n_per_prompt].size();
            return chunk(d.index, echo[d.index / n_per_prompt], l.to_json(), "");
          }
          json lp;
          if (p->logprobs) {
            LegacyLogprobs l;
            l.offset = offsets[d.index];
            l.add(tok, d.logprobs);
            offsets[d.index] = l.offset;
            lp = l.to_json();
          }
          return chunk(d.index, d.text, lp, d.finish_reason);
        },
        [&] { return sink.client_gone(); });
    json usage_chunk;
    if (p->include_usage)
      usage_chunk = {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
                     {"system_fingerprint", nullptr}, {"seed", seed}, {"choices", json::array()},
                     {"usage", usage_json(prompt_tokens, gen->completion_tokens(), truncated, gen->cached_tokens())}};
    finish_stream(s, sink, err, usage_chunk, arrival);
  };
}

}  // namespace ballast::server
