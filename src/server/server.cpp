// Server lifecycle, routing (auth, readiness, metrics per route) and request preparation.
#include "server/server.h"

#include <algorithm>
#include <malloc.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "core/log.h"
#include "server/auth.h"
#include "server/sse.h"
#include "vocab/audit.h"

namespace ballast::server {

using json = nlohmann::json;

void send_error(HttpResponse& res, const ApiError& e) {
  res.status = e.status;
  res.content_type = "application/json";
  res.body = e.body();
  res.stream = nullptr;
  if (e.status == 401) res.headers.emplace_back("WWW-Authenticate", "Bearer");
  if (e.status == 429 || e.status == 503) res.headers.emplace_back("Retry-After", "1");
}

void send_json(HttpResponse& res, const json& j, int status) {
  res.status = status;
  res.content_type = "application/json";
  res.body = dump_json(j);
}

std::string new_request_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += hex[rng() & 15];
  return s;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Server::Server(ServerConfig c) : cfg(std::move(c)) {
  limits.max_n = cfg.max_n;
  limits.max_messages = static_cast<size_t>(cfg.max_messages);
  created = unix_now();
}

Server::~Server() = default;

bool Server::known_model(const std::string& name) const {
  for (const auto& n : model_names)
    if (n == name) return true;
  return false;
}

MaybeError check_model(const Server& s, const std::string& model) {
  if (model.empty() || s.known_model(model)) return {};
  ApiError e;
  e.status = 404;
  e.type = "invalid_request_error";
  e.param = "model";
  e.code = "model_not_found";
  e.message = "The model '" + model + "' does not exist; this server serves '" + s.model_names.front() + "'";
  return e;
}

HttpHandler Server::guarded(std::string endpoint, bool needs_model, HttpHandler h) {
  return [this, endpoint, needs_model, h](const HttpRequest& req, HttpResponse& res) {
    auto t0 = std::chrono::steady_clock::now();
    active_requests++;
    if (!authorized(cfg.api_key, req.header("authorization"))) {
      ApiError e;
      e.status = 401;
      e.code = "invalid_api_key";
      e.message = req.header("authorization") ? "Incorrect API key provided" : "Missing API key: send 'Authorization: Bearer <key>'";
      send_error(res, e);
    } else if (needs_model && !ready) {
      send_error(res, ApiError{503, "the model is still loading; retry when /health answers 200", "server_error", "", "model_loading"});
    } else if (needs_model && draining) {
      send_error(res, ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
    } else {
      const bool large = req.body.size() > kLargeBody;
      if (large && !large_bodies.try_acquire_for(std::chrono::seconds(30))) {
        send_error(res, ApiError{503, "too many large request bodies at once; retry later", "server_error", "",
                                 "resource_exhausted"});
      } else {
        try {
          h(req, res);
        } catch (const std::exception& ex) {
          log::err("request.exception", "bug: " + endpoint + " threw: " + ex.what());
          send_error(res, ApiError{500, "internal error (a bug in ballast): " + std::string(ex.what()), "server_error",
                                   "", "internal_error"});
        }
        if (large) {
          large_bodies.release();
          // The parse's structures are freed by now; give their pages back to the system
          // instead of leaving them in malloc's free lists (RSS would stay at the peak).
          ::malloc_trim(0);
        }
      }
    }
    metrics.request_done(endpoint, res.status);
    // Streaming responses finish later; the stream wrapper logs those.
    if (!res.stream) {
      active_requests--;
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      log::event(res.status >= 500 ? log::Level::kWarning : log::Level::kDebug, "request.done",
                 req.method + " " + req.path + " " + std::to_string(res.status),
                 {{"status", res.status}, {"ms", ms}, {"remote", req.remote}});
    } else {
      // The guard ends the request's accounting even if the stream never runs (client gone).
      struct Done {
        Server* s;
        std::string line;
        std::chrono::steady_clock::time_point t0;
        ~Done() {
          s->active_requests--;
          double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          log::event(log::Level::kDebug, "request.done", line + " 200 (stream)", {{"status", 200}, {"ms", ms}});
        }
      };
      auto done = std::make_shared<Done>(this, req.method + " " + req.path, t0);
      auto inner = std::move(res.stream);
      res.stream = [inner, done](StreamSink& sink) { inner(sink); };
    }
  };
}

void Server::register_routes() {
  http_->route("GET", "/health", [this](const HttpRequest&, HttpResponse& res) {
    if (!ready) send_json(res, {{"status", "loading"}}, 503);
    else if (draining) send_json(res, {{"status", "draining"}}, 503);
    else send_json(res, {{"status", "ok"}});
    metrics.request_done("/health", res.status);
  });
  http_->route("GET", "/metrics", guarded("/metrics", false, [this](const HttpRequest&, HttpResponse& res) {
                 metrics.set_connections(static_cast<int64_t>(http_->connections()),
                                         static_cast<int64_t>(http_->evictions()));
                 res.content_type = "text/plain; version=0.0.4; charset=utf-8";
                 res.body = metrics.render();
               }));
  http_->route("GET", "/v1/models", guarded("/v1/models", true, [this](const HttpRequest& q, HttpResponse& r) {
                 handle_models(*this, q, r);
               }));
  http_->route("POST", "/v1/completions", guarded("/v1/completions", true, [this](const HttpRequest& q, HttpResponse& r) {
                 handle_completions(*this, q, r);
               }));
  http_->route("POST", "/v1/chat/completions",
               guarded("/v1/chat/completions", true,
                       [this](const HttpRequest& q, HttpResponse& r) { handle_chat(*this, q, r); }));
  http_->route("POST", "/tokenize", guarded("/tokenize", true, [this](const HttpRequest& q, HttpResponse& r) {
                 handle_tokenize(*this, q, r);
               }));
  http_->route("POST", "/detokenize", guarded("/detokenize", true, [this](const HttpRequest& q, HttpResponse& r) {
                 handle_detokenize(*this, q, r);
               }));
  static const std::set<std::string> known{"/health", "/metrics", "/v1/models", "/v1/completions",
                                           "/v1/chat/completions", "/tokenize", "/detokenize"};
  auto fallback = [this](const HttpRequest& req, HttpResponse& res) {
    if (req.method == "GET" && req.path.rfind("/v1/models/", 0) == 0) return handle_models(*this, req, res);
    if (known.count(req.path))
      return send_error(res, ApiError{405, "method " + req.method + " is not allowed on " + req.path,
                                      "invalid_request_error", "", "method_not_allowed"});
    send_error(res, ApiError{404, "no such endpoint: " + req.method + " " + req.path, "invalid_request_error", "",
                             "not_found"});
  };
  http_->set_fallback(guarded("other", false, fallback));
}

Status Server::listen() {
  HttpServerOptions ho;
  ho.max_body_bytes = cfg.max_body_bytes;
  ho.max_connections = static_cast<size_t>(cfg.max_connections);
  ho.max_connections_per_ip = static_cast<size_t>(cfg.max_connections_per_ip);
  ho.idle_timeout_s = cfg.idle_timeout_s;
  ho.header_timeout_s = cfg.header_timeout_s;
  ho.error_response = [this](int status, const std::string& msg) {
    HttpResponse r;
    ApiError e{status, msg, status >= 500 ? "server_error" : "invalid_request_error", "", ""};
    if (status == 413) e.code = "request_too_large";
    send_error(r, e);
    metrics.request_done("other", status);
    return r;
  };
  http_ = std::make_unique<HttpServer>(ho);
  register_routes();
  std::string err;
  if (!http_->bind(cfg.host, cfg.port, err)) return error(ErrorCode::kIoError, err);
  http_->start();
  log::info("server.listening", "listening on http://" + cfg.host + ":" + std::to_string(http_->port()),
            {{"host", cfg.host}, {"port", http_->port()}});
  return Status();
}

Status Server::load(const runtime::RuntimeOptions& ro) {
  BALLAST_ASSIGN_OR_RETURN(rt, runtime::load_runtime(ro));
  const int64_t model_ctx = rt->model().config().max_pos;
  ctx_size = cfg.ctx_size > 0 ? cfg.ctx_size : std::min<int64_t>(model_ctx > 0 ? model_ctx : 4096, 4096);
  if (model_ctx > 0 && ctx_size > model_ctx)
    log::warn("server.ctx_beyond_model", "--ctx-size " + std::to_string(ctx_size) + " exceeds the model's context of " +
                                             std::to_string(model_ctx));
  engine::EngineOptions eo;
  eo.ctx_size = ctx_size;
  eo.limits.max_batch = cfg.max_batch;
  eo.limits.max_queue = cfg.max_queue;
  eo.limits.token_budget = cfg.token_budget;
  eo.forward.check_numerics = ro.check_numerics;
  eo.prefix_cache = !cfg.no_prefix_cache;
  engine = std::make_unique<engine::Engine>(rt->model(), rt->audit.valid, eo);
  if (!cfg.no_prefix_cache && !engine->prefix_cache())
    log::info("server.prefix_cache_off", "prefix caching is off for this model: its KV cache is not a function of the "
                                         "token prefix alone (encoder-decoder or LongRoPE)");
  loop = std::make_unique<EngineLoop>(*engine, metrics);
  prompts = std::make_unique<PromptBuilder>(*rt, cfg.allow_special_in_content);
  BALLAST_RETURN_IF_ERROR(prompts->load_template());
  if (auto eos = prompts->eos_turns())
    log::info("server.chat_eos_turns", "the model has no chat template: /v1/chat/completions joins the turns with eos " +
                                           std::to_string(*eos) + " (GPT-2 / DialoGPT convention, docs/api.md)");
  else if (!prompts->has_template())
    log::warn("server.no_chat_template", "the model has no chat template: /v1/chat/completions answers 400");
  std::string names = cfg.served_model_name;
  if (names.empty()) {
    std::filesystem::path p(ro.model);
    while (!p.empty() && !p.has_filename()) p = p.parent_path();
    names = p.extension() == ".gguf" ? p.stem().string() : p.filename().string();
  }
  size_t b = 0;
  while (b <= names.size()) {
    size_t e = names.find(',', b);
    if (e == std::string::npos) e = names.size();
    if (e > b) model_names.push_back(names.substr(b, e - b));
    b = e + 1;
  }
  if (model_names.empty()) model_names.push_back("default");
  std::vector<std::pair<std::string, std::string>> findings;
  for (const auto& f : rt->audit.findings) findings.emplace_back(f.id, vocab::severity_name(f.severity));
  metrics.set_audit_findings(std::move(findings));
  loop->start();
  ready = true;
  metrics.set_ready(true);
  log::info("server.ready", "serving '" + model_names.front() + "' (context " + std::to_string(ctx_size) +
                                ", max batch " + std::to_string(cfg.max_batch) + ")",
            {{"model", model_names.front()}, {"ctx_size", ctx_size}});
  return Status();
}

void Server::drain() {
  draining = true;
  metrics.set_ready(false);
  if (http_) http_->stop_accepting();
  log::info("server.draining", "stopped accepting; draining " + std::to_string(active_requests.load()) +
                                   " request(s), up to " + std::to_string(cfg.drain_timeout_s) + " s");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.drain_timeout_s);
  while (std::chrono::steady_clock::now() < deadline && (active_requests > 0 || (loop && loop->in_flight() > 0)))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (active_requests > 0 || (loop && loop->in_flight() > 0)) {
    log::warn("server.drain_timeout", std::to_string(active_requests.load()) + " request(s) still running; cancelling");
    // Cancelled sequences end their requests with an error (streams: an error event and
    // [DONE]); give the handlers a moment to write it before connections close.
    if (loop) loop->cancel_all();
    auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < grace && active_requests > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (http_) http_->shutdown(2000);
  if (loop) loop->stop();
  log::info("server.stopped", "server stopped");
}

MaybeError prepare_request(Server& s, const CommonParams& p, std::vector<std::vector<int32_t>> prompts,
                           bool default_max_to_context, PreparedRequest& out) {
  const auto& audit = s.rt->audit;
  // ignore_eos drops the model's stop ids but keeps the client's own stop_token_ids.
  std::set<int32_t> stop_ids = p.ignore_eos ? std::set<int32_t>{} : audit.stop_ids;
  if (!p.stop_token_ids.is_null()) {
    Status st = vocab::validate_ids(p.stop_token_ids, audit, "stop_token_ids");
    if (!st.ok()) return from_status(st, "stop_token_ids");
    for (const auto& v : p.stop_token_ids) stop_ids.insert(static_cast<int32_t>(v.get<int64_t>()));
  }
  engine::SamplingParams sp = p.sampling(runtime::default_sampling(*s.rt));
  if (!p.logit_bias.is_null()) {
    json keys = json::array();
    for (auto it = p.logit_bias.begin(); it != p.logit_bias.end(); ++it) {
      const std::string& k = it.key();
      size_t used = 0;
      long long v = 0;
      bool ok = !k.empty();
      try {
        v = std::stoll(k, &used);
      } catch (...) {
        ok = false;
      }
      keys.push_back(ok && used == k.size() ? json(v) : json(k));
    }
    Status st = vocab::validate_ids(keys, audit, "logit_bias");
    if (!st.ok()) return from_status(st, "logit_bias");
    size_t i = 0;
    for (auto it = p.logit_bias.begin(); it != p.logit_bias.end(); ++it, ++i)
      sp.logit_bias[static_cast<int32_t>(keys[i].get<int64_t>())] = static_cast<float>(it.value().get<double>());
  }
  // Every sequence of a request enters the engine's queue at once: more than --max-queue
  // can never be admitted, so say so now instead of a 429 the client would retry forever.
  const int64_t per_prompt = p.sequences_per_prompt();
  out.per_prompt = per_prompt;
  const int64_t n_seqs = static_cast<int64_t>(prompts.size()) * per_prompt;
  if (n_seqs > s.cfg.max_queue)
    return bad_request("this request needs " + std::to_string(n_seqs) + " sequences (" +
                           std::to_string(prompts.size()) + " prompt(s) x " + (p.best_of ? "best_of=" : "n=") +
                           std::to_string(per_prompt) +
                           "); the server admits at most " + std::to_string(s.cfg.max_queue) +
                           " per request (--max-queue); send fewer prompts or a smaller n",
                       "n", "too_many_sequences");
  // No client seed: draw one (53 bits: exact in any JSON reader) and report it, so a
  // sampled answer can be reproduced by sending it back.
  if (!sp.seed) {
    thread_local std::mt19937_64 rng{std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32)};
    sp.seed = rng() & ((uint64_t{1} << 53) - 1);
  }
  out.seed = *sp.seed;
  engine::ConstraintFactory constraint;
  if (!p.grammar.empty()) {
    auto f = s.grammars.get(p.grammar, *s.rt->tok, audit.valid);
    if (!f.ok()) return from_status(f.status(), "response_format");
    constraint = f.value();
  }
  const int64_t ctx = s.ctx_size;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    auto& ids = prompts[pi];
    if (ids.empty()) return bad_request("the prompt is empty (it encodes to no tokens)", "prompt");
    if (p.truncate_prompt_tokens && static_cast<int64_t>(ids.size()) > *p.truncate_prompt_tokens) {
      int64_t drop = static_cast<int64_t>(ids.size()) - *p.truncate_prompt_tokens;
      ids.erase(ids.begin(), ids.begin() + drop);
      out.truncated_tokens += drop;
    }
    const int64_t n = static_cast<int64_t>(ids.size());
    if (n >= ctx) {
      return bad_request("This model's maximum context length is " + std::to_string(ctx) + " tokens, but the prompt has " +
                             std::to_string(n) + " tokens (no room to generate). Shorten the prompt, raise --ctx-size, "
                             "or set truncate_prompt_tokens.",
                         "prompt", "context_length_exceeded");
    }
    if (p.max_tokens && n + *p.max_tokens > ctx) {
      return bad_request("This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                             std::to_string(n + *p.max_tokens) + " tokens (" + std::to_string(n) + " in the prompt, " +
                             std::to_string(*p.max_tokens) + " for the completion). Reduce the prompt or max_tokens.",
                         "max_tokens", "context_length_exceeded");
    }
    int64_t max_tokens = p.max_tokens ? *p.max_tokens : (default_max_to_context ? ctx - n : std::min<int64_t>(16, ctx - n));
    // The KV cache may hold less than one context (the backend could not allocate more):
    // a sequence that cannot fit even an empty cache would only fail later.
    const int64_t kv_blocks = s.engine->kv().total_blocks();
    const int64_t need = engine::BlockManager::blocks_for(n + max_tokens);
    if (need > kv_blocks)
      return bad_request("this sequence needs " + std::to_string(n + max_tokens) + " tokens of KV cache (" +
                             std::to_string(n) + " in the prompt, " + std::to_string(max_tokens) +
                             " for the completion) but the whole cache holds " +
                             std::to_string(kv_blocks * engine::BlockManager::kBlockTokens) +
                             "; reduce the prompt or max_tokens",
                         p.max_tokens ? "max_tokens" : "prompt", "context_length_exceeded");
    out.prompt_tokens += n;
    for (int64_t j = 0; j < per_prompt; ++j) {
      SequenceSpec spec;
      runtime::set_input(s.rt->model(), spec.req, ids);
      spec.req.sampling = sp;
      spec.req.sampling.seed = *sp.seed + static_cast<uint64_t>(j);
      spec.leader = j == 0;
      spec.req.max_tokens = max_tokens;
      spec.req.ignore_eos = false;  // expressed through stop_ids above
      spec.req.stop_ids = stop_ids;
      spec.req.constraint = constraint;
      spec.req.client = out.client;
      spec.choice_index = static_cast<int>(pi * per_prompt + j);
      spec.prompt_index = static_cast<int>(pi);
      out.seqs.push_back(std::move(spec));
    }
  }
  out.prompts = std::move(prompts);
  s.metrics.add_prompt_tokens(out.prompt_tokens);
  return {};
}

nlohmann::json usage_json(int64_t prompt, int64_t completion, int64_t truncated, int64_t cached) {
  nlohmann::json u = {{"prompt_tokens", prompt},
                      {"completion_tokens", completion},
                      {"total_tokens", prompt + completion},
                      {"prompt_tokens_details", {{"cached_tokens", cached}}}};
  if (truncated > 0) u["truncated_prompt_tokens"] = truncated;
  return u;
}

std::vector<int> pick_choices(const Generation& g, size_t n_prompts, int64_t per_prompt, int64_t n) {
  std::vector<int> out;
  for (size_t pi = 0; pi < n_prompts; ++pi) {
    std::vector<int> c(static_cast<size_t>(per_prompt));
    for (int64_t j = 0; j < per_prompt; ++j) c[j] = static_cast<int>(pi * per_prompt + j);
    if (per_prompt > n)  // best_of: most likely first, ties in choice order
      std::stable_sort(c.begin(), c.end(),
                       [&](int a, int b) { return g.cumulative_logprob(a) > g.cumulative_logprob(b); });
    out.insert(out.end(), c.begin(), c.begin() + n);
  }
  return out;
}

nlohmann::json completion_response(const char* object, const std::string& id, int64_t created,
                                   const std::string& model, nlohmann::json choices, nlohmann::json usage) {
  return {{"id", id},
          {"object", object},
          {"created", created},
          {"model", model},
          {"system_fingerprint", nullptr},
          {"choices", std::move(choices)},
          {"usage", std::move(usage)}};
}

void start_event_stream(HttpResponse& res) {
  res.content_type = "text/event-stream";
  res.headers.emplace_back("Cache-Control", "no-cache");
  res.headers.emplace_back("X-Accel-Buffering", "no");
}

void observe_request(Server& s, std::chrono::steady_clock::time_point arrival) {
  s.metrics.request_duration.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - arrival).count());
}

void finish_stream(Server& s, StreamSink& sink, const MaybeError& err, const nlohmann::json& usage_chunk,
                   std::chrono::steady_clock::time_point arrival) {
  if (err) {
    sink.write(sse_event(err->to_json()));
    sink.write(sse_done());
    return;
  }
  if (sink.client_gone()) return;
  if (!usage_chunk.is_null()) sink.write(sse_event(usage_chunk));
  sink.write(sse_done());
  observe_request(s, arrival);
}

}  // namespace ballast::server
