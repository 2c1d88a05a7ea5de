// The OpenAI-compatible server: configuration, shared state (runtime, engine thread,
// metrics, prompt builder), route table and lifecycle (listen while loading, ready,
// drain on SIGTERM).
#pragma once
#include <chrono>
#include <atomic>
#include <cstdint>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "runtime/runtime.h"
#include "server/api_error.h"
#include "server/engine_loop.h"
#include "server/generation.h"
#include "server/http_server.h"
#include "server/json_body.h"
#include "server/metrics.h"
#include "server/openai_schema.h"
#include "server/prompt_builder.h"
#include "server/structured_output.h"

namespace ballast::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  int64_t ctx_size = 0;          // 0: the model's context, at most 4096
  int64_t max_batch = 16;
  int64_t max_queue = 64;
  int64_t token_budget = 512;
  std::string served_model_name; // comma-separated names; default: the model file's name
  size_t max_body_bytes = 8u << 20;
  bool allow_special_in_content = false;
  int drain_timeout_s = 30;
  int max_n = 16;
  int64_t max_messages = 4096;
  bool no_prefix_cache = false;  // --no-prefix-cache: every request prefills its whole prompt
  int64_t max_connections = 1024;
  int64_t max_connections_per_ip = 256;
  int idle_timeout_s = 60;
  int header_timeout_s = 10;
  bool clean_up_spaces = false;  // --clean-up-tokenization-spaces: default for generated text
};

class Server {
 public:
  explicit Server(ServerConfig cfg);
  ~Server();

  // Starts listening (health answers 503 until load() finishes).
  Status listen();
  Status load(const runtime::RuntimeOptions& ro);
  // Stop accepting, wait for in-flight requests up to the drain timeout, stop the engine.
  void drain();
  int port() const { return http_ ? http_->port() : 0; }

  // State shared with handlers.
  ServerConfig cfg;
  Metrics metrics;
  std::unique_ptr<runtime::Runtime> rt;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<EngineLoop> loop;
  std::unique_ptr<PromptBuilder> prompts;
  std::vector<std::string> model_names;
  int64_t ctx_size = 0;
  int64_t created = 0;
  std::atomic<bool> ready{false}, draining{false};
  std::atomic<int64_t> active_requests{0};
  SchemaLimits limits;
  JsonBodyLimits json_limits;
  GrammarCache grammars;  // structured output
  // Bodies over kLargeBody are parsed two at a time: a parse may build structures many
  // times the body's size, and eight at once must not multiply that (issue 14).
  static constexpr size_t kLargeBody = 1u << 20;
  std::counting_semaphore<16> large_bodies{2};

  bool known_model(const std::string& name) const;

 private:
  void register_routes();
  HttpHandler guarded(std::string endpoint, bool needs_model, HttpHandler h);
  std::unique_ptr<HttpServer> http_;
};

// Handlers (one file per endpoint family).
void handle_completions(Server& s, const HttpRequest& req, HttpResponse& res);
void handle_chat(Server& s, const HttpRequest& req, HttpResponse& res);
void handle_models(Server& s, const HttpRequest& req, HttpResponse& res);
void handle_tokenize(Server& s, const HttpRequest& req, HttpResponse& res);
void handle_detokenize(Server& s, const HttpRequest& req, HttpResponse& res);

// Helpers shared by the handlers.
void send_error(HttpResponse& res, const ApiError& e);
void send_json(HttpResponse& res, const nlohmann::json& j, int status = 200);
std::string new_request_id(const char* prefix);
int64_t unix_now();

// Token ids of every prompt, validated and checked against the context, turned into
// engine sequences (best_of or n per prompt, seeds seed + index within the prompt; without
// a client seed one is drawn, so the response can report it).
struct PreparedRequest {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SequenceSpec> seqs;       // per_prompt per prompt, prompt by prompt
  int64_t per_prompt = 1;               // best_of (or n)
  int64_t prompt_tokens = 0;
  int64_t truncated_tokens = 0;
  uint64_t seed = 0;                    // the client's seed, or the one drawn for it (reported back)
  std::string client;  // set by the caller: who asked (queue share and admission turns)
};
MaybeError prepare_request(Server& s, const CommonParams& p, std::vector<std::vector<int32_t>> prompts,
                           bool default_max_to_context, PreparedRequest& out);
MaybeError check_model(const Server& s, const std::string& model);

// OpenAI "usage" object with prompt_tokens_details.cached_tokens (prefix cache);
// truncated_prompt_tokens only when the prompt was truncated.
nlohmann::json usage_json(int64_t prompt, int64_t completion, int64_t truncated, int64_t cached);
// Output order of a request's sequences: per prompt, the n of its per_prompt sequences with
// the highest cumulative logprob (best_of), or all of them in order when per_prompt == n.
std::vector<int> pick_choices(const Generation& g, size_t n_prompts, int64_t per_prompt, int64_t n);
// The non-streamed response body both endpoints share (object: "chat.completion" or
// "text_completion").
nlohmann::json completion_response(const char* object, const std::string& id, int64_t created,
                                   const std::string& model, nlohmann::json choices, nlohmann::json usage);
// Marks res as a server-sent event stream (content type, no caching or proxy buffering).
void start_event_stream(HttpResponse& res);
// Records a generation request's time from arrival to its last byte.
void observe_request(Server& s, std::chrono::steady_clock::time_point arrival);
// Ends a stream the same way for both endpoints: the error event if generation failed,
// else the usage chunk (when usage_chunk is not null), then [DONE].
void finish_stream(Server& s, StreamSink& sink, const MaybeError& err, const nlohmann::json& usage_chunk,
                   std::chrono::steady_clock::time_point arrival);

}  // namespace ballast::server
