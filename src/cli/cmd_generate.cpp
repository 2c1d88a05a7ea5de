// `ballast generate`: one prompt in, one completion out (text or --json).
#include <iostream>

#include "cli/options.h"
#include "core/log.h"

namespace ballast::cli {

namespace {

struct GenerateArgs {
  runtime::RuntimeOptions rt;
  std::string log_format = "human";
  std::string prompt, prompt_ids;
  bool has_prompt = false;
  int64_t max_tokens = 128, top_k = -1, ctx_size = 4096, token_budget = 0;
  double temperature = -1, top_p = -1, min_p = -1, repetition_penalty = -1;
  int64_t seed = -1;
  int top_logprobs = 0;
  bool ignore_eos = false, json = false;
};

// "1,2,3" -> JSON array of numbers (non-integers kept as strings so validation names them).
nlohmann::json parse_id_list(const std::string& s) {
  nlohmann::json arr = nlohmann::json::array();
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    std::string t = s.substr(b, e - b);
    t.erase(0, t.find_first_not_of(" \t"));
    t.erase(t.find_last_not_of(" \t") + 1);
    if (!t.empty() || e < s.size()) {
      // Integers too large for 64 bits would become doubles ("1e+20"): keep the text so
      // the error names the id as typed.
      bool integer_text = !t.empty() && t.find_first_not_of("-0123456789") == std::string::npos;
      try {
        auto v = nlohmann::json::parse(t);
        arr.push_back(v.is_number() && (v.is_number_integer() || !integer_text) ? v : nlohmann::json(t));
      } catch (...) {
        arr.push_back(t);
      }
    }
    b = e + 1;
  }
  return arr;
}

int run_generate(GenerateArgs& a) {
  if (!apply_log_format(a.log_format)) return 2;
  if (a.has_prompt == !a.prompt_ids.empty())
    return fail(error(ErrorCode::kInvalidArgument, "give exactly one of --prompt and --prompt-ids"));
  if (a.max_tokens < 1) return fail(error(ErrorCode::kInvalidArgument, "--max-tokens must be >= 1"));
  if (a.token_budget < 0) return fail(error(ErrorCode::kInvalidArgument, "--token-budget must be >= 1 (0: the default)"));
  if (a.top_logprobs < 0 || a.top_logprobs > 100) return fail(error(ErrorCode::kInvalidArgument, "--top-logprobs must be in [0, 100]"));
  auto rtr = runtime::load_runtime(a.rt);
  if (!rtr.ok()) return fail(rtr.status());
  auto& rt = *rtr.value();
  engine::GenerationRequest req;
  std::vector<int32_t> prompt;  // the prompt (encoder-decoders: the encoder input)
  if (!a.prompt_ids.empty()) {
    auto ids = parse_id_list(a.prompt_ids);
    if (ids.empty()) return fail(error(ErrorCode::kInvalidTokenId, "invalid_token_id: --prompt-ids is empty"));
    Status st = vocab::validate_ids(ids, rt.audit, "--prompt-ids");
    if (!st.ok()) return fail(Status(st.code(), "invalid_token_id: " + st.message()));
    for (auto& v : ids) prompt.push_back(static_cast<int32_t>(v.get<int64_t>()));
  } else {
    auto enc = rt.tok->encode(a.prompt, {true, true});
    if (!enc.ok()) return fail(enc.status());
    prompt = enc.value();
    if (prompt.empty()) return fail(error(ErrorCode::kInvalidArgument, "--prompt encodes to no tokens"));
  }
  runtime::set_input(rt.model(), req, prompt);
  req.sampling = runtime::default_sampling(rt);
  if (a.temperature >= 0) req.sampling.temperature = a.temperature;
  if (a.top_k >= 0) req.sampling.top_k = a.top_k;
  if (a.top_p >= 0) req.sampling.top_p = a.top_p;
  if (a.min_p >= 0) req.sampling.min_p = a.min_p;
  if (a.repetition_penalty > 0) req.sampling.repetition_penalty = a.repetition_penalty;
  if (a.seed >= 0) req.sampling.seed = static_cast<uint64_t>(a.seed);
  req.sampling.top_logprobs = a.top_logprobs;
  req.max_tokens = a.max_tokens;
  req.ignore_eos = a.ignore_eos;
  req.stop_ids = rt.audit.stop_ids;
  tokenizer::StreamDecoder stream(*rt.tok, true);
  auto out = runtime::generate_sync(rt, std::move(req), a.ctx_size, [&](int32_t id) {
    if (a.json) return;
    auto d = stream.push(id);
    if (d.ok() && !rt.audit.stop_ids.count(id)) std::cout << d.value() << std::flush;
  }, a.token_budget);
  if (!out.ok()) {
    std::cout << std::flush;
    return fail(Status(out.status().code(), std::string(error_code_name(out.status().code())) + ": " + out.status().message()));
  }
  const auto& o = out.value();
  std::vector<int32_t> text_ids = o.ids;
  if (o.finish == engine::FinishReason::kStop && !text_ids.empty()) text_ids.pop_back();
  auto text = rt.tok->decode_with(text_ids, true, false);  // lossless, as streamed
  if (!text.ok()) return fail(text.status());
  if (a.json) {
    nlohmann::json j;
    j["prompt_ids"] = prompt;
    j["ids"] = o.ids;
    j["text"] = text.value();
    j["finish_reason"] = engine::finish_reason_name(o.finish);
    j["top_logprobs"] = nlohmann::json::array();
    for (const auto& s : o.samples) {
      nlohmann::json step = nlohmann::json::array();
      for (const auto& [id, lp] : s.top) step.push_back({id, lp});
      j["top_logprobs"].push_back(step);
    }
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    auto tail = stream.finish();
    if (tail.ok()) std::cout << tail.value();
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

void add_generate(CLI::App& app, Options& o) {
  auto* a = keep(std::make_shared<GenerateArgs>());
  auto* c = app.add_subcommand("generate", "generate a completion for a prompt");
  add_runtime_options(c, o, a->rt, a->log_format);
  c->add_option("--prompt", a->prompt, "prompt text (gets the tokenizer's usual special tokens, e.g. BOS)");
  c->add_option("--prompt-ids", a->prompt_ids, "prompt token ids, comma-separated, used exactly as given (encoder-decoders: the encoder input)");
  o.add(c, "--max-tokens,-n", a->max_tokens, "tokens to generate at most");
  c->add_option("--temperature", a->temperature, "0 = greedy (default: generation_config.json / GGUF, else greedy)");
  c->add_option("--top-k", a->top_k, "keep the k most likely tokens (0 = off)");
  c->add_option("--top-p", a->top_p, "nucleus sampling mass");
  c->add_option("--min-p", a->min_p, "drop tokens below min_p x the top probability");
  c->add_option("--repetition-penalty", a->repetition_penalty, "HF-style repetition penalty");
  c->add_option("--seed", a->seed, "random seed (same seed, same output)");
  c->add_option("--top-logprobs", a->top_logprobs, "report the K most likely tokens at each step");
  c->add_flag("--ignore-eos", a->ignore_eos, "do not stop at end-of-sequence tokens");
  c->add_flag("--json", a->json, "print one JSON object");
  o.add(c, "--ctx-size", a->ctx_size, "context size in tokens");
  c->add_option("--token-budget", a->token_budget, "tokens computed per step (prefill chunk size; default 512)");
  c->callback([a, c] { a->has_prompt = c->count("--prompt") > 0; });
  on_run(c, [a] { return run_generate(*a); });
}

}  // namespace ballast::cli
