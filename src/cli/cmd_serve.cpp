// `ballast serve`: the OpenAI-compatible HTTP server. Listens first (/health answers
// 503 while the model loads), then serves until SIGTERM/SIGINT, drains, exits 0.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/options.h"
#include "core/log.h"
#include "server/server.h"

namespace ballast::cli {

namespace {

struct ServeArgs {
  runtime::RuntimeOptions rt;
  std::string log_format = "human";
  server::ServerConfig cfg;
  std::string api_key_file;
  int64_t max_body_bytes = 8 << 20;
  int64_t load_delay_ms = 0;  // tests: hold the loading state
};

std::mutex g_mu;
std::condition_variable g_cv;
bool g_stop = false;
int g_sig_pipe[2] = {-1, -1};

Status read_key_file(const std::string& path, std::string& key) {
  std::ifstream in(path);
  if (!in) return error(ErrorCode::kIoError, "--api-key-file " + path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  key = ss.str();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  size_t b = 0;
  while (b < key.size() && std::isspace(static_cast<unsigned char>(key[b]))) ++b;
  key = key.substr(b);
  if (key.empty()) return error(ErrorCode::kInvalidArgument, "--api-key-file " + path + ": the file is empty");
  return Status();
}

int run_serve(ServeArgs& a) {
  if (!apply_log_format(a.log_format)) return 2;
  auto& cfg = a.cfg;
  if (!cfg.api_key.empty() && !a.api_key_file.empty())
    return fail(error(ErrorCode::kInvalidArgument, "give at most one of --api-key and --api-key-file"));
  if (!a.api_key_file.empty()) {
    Status st = read_key_file(a.api_key_file, cfg.api_key);
    if (!st.ok()) return fail(st);
  }
  if (cfg.port < 0 || cfg.port > 65535) return fail(error(ErrorCode::kInvalidArgument, "--port must be in [0, 65535]"));
  if (cfg.max_batch < 1) return fail(error(ErrorCode::kInvalidArgument, "--max-batch must be >= 1"));
  if (cfg.max_queue < 1) return fail(error(ErrorCode::kInvalidArgument, "--max-queue must be >= 1"));
  if (cfg.max_messages < 1) return fail(error(ErrorCode::kInvalidArgument, "--max-messages must be >= 1"));
  if (cfg.max_connections < 1) return fail(error(ErrorCode::kInvalidArgument, "--max-connections must be >= 1"));
  if (cfg.max_connections_per_ip < 1)
    return fail(error(ErrorCode::kInvalidArgument, "--max-connections-per-ip must be >= 1"));
  if (cfg.idle_timeout_s < 1) return fail(error(ErrorCode::kInvalidArgument, "--idle-timeout must be >= 1"));
  if (cfg.header_timeout_s < 1) return fail(error(ErrorCode::kInvalidArgument, "--header-timeout must be >= 1"));
  if (cfg.ctx_size < 0) return fail(error(ErrorCode::kInvalidArgument, "--ctx-size must be >= 0"));
  if (a.max_body_bytes < 1024) return fail(error(ErrorCode::kInvalidArgument, "--max-body-bytes must be >= 1024"));
  cfg.max_body_bytes = static_cast<size_t>(a.max_body_bytes);
  if (a.rt.model.empty()) return fail(error(ErrorCode::kInvalidArgument, "option --model is required"));
  if (cfg.api_key.empty() && cfg.host != "127.0.0.1" && cfg.host != "localhost" && cfg.host != "::1")
    log::warn("server.no_api_key", "listening on " + cfg.host + " without an API key: anyone who can reach it can use it");

  // The handler only writes to a pipe (async-signal-safe); a thread reads it, so it
  // does not matter which thread the signal lands on.
  if (::pipe(g_sig_pipe) != 0) return fail(error(ErrorCode::kIoError, "pipe() failed"));
  struct sigaction sa {};
  sa.sa_handler = [](int sig) {
    unsigned char b = static_cast<unsigned char>(sig);
    ssize_t r = ::write(g_sig_pipe[1], &b, 1);
    (void)r;
  };
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::thread([] {
    unsigned char b;
    while (::read(g_sig_pipe[0], &b, 1) != 1) {
    }
    {
      std::lock_guard<std::mutex> lk(g_mu);
      g_stop = true;
    }
    g_cv.notify_all();
    while (::read(g_sig_pipe[0], &b, 1) != 1) {
    }
    log::warn("server.forced_exit", "second signal: exiting without waiting for requests");
    std::_Exit(1);
  }).detach();

  auto* srv = new server::Server(cfg);  // lives until the process exits (detached threads use it)
  Status st = srv->listen();
  if (!st.ok()) return fail(st);
  std::thread loader([&] {
    if (a.load_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.load_delay_ms));
    Status ls = srv->load(a.rt);
    if (!ls.ok()) {
      fail(ls);
      std::fflush(stderr);
      std::_Exit(1);
    }
  });
  {
    std::unique_lock<std::mutex> lk(g_mu);
    g_cv.wait(lk, [] { return g_stop; });
  }
  if (!srv->ready) {
    log::info("server.stopped", "stopped while loading");
    std::fflush(stderr);
    std::_Exit(0);
  }
  loader.join();
  srv->drain();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(0);
}

}  // namespace

void add_serve(CLI::App& app, Options& o) {
  auto* a = keep(std::make_shared<ServeArgs>());
  auto* c = app.add_subcommand("serve", "serve the model over an OpenAI-compatible HTTP API");
  add_runtime_options(c, o, a->rt, a->log_format);
  auto& cfg = a->cfg;
  o.add(c, "--host", cfg.host, "address to listen on (loopback by default)");
  o.add(c, "--port", cfg.port, "TCP port (0: any free port)");
  // Not in the options registry: `ballast config` must not print the key.
  c->add_option("--api-key", cfg.api_key, "require 'Authorization: Bearer KEY' on every route but /health")
      ->envname("BALLAST_API_KEY");
  o.add(c, "--api-key-file", a->api_key_file, "read the API key from this file");
  o.add(c, "--ctx-size", cfg.ctx_size, "context size in tokens per sequence (0: the model's, at most 4096)");
  o.add(c, "--max-batch", cfg.max_batch, "sequences generated together in one step");
  o.add(c, "--max-queue", cfg.max_queue, "sequences waiting for a batch slot before requests get 429 (a request needing more is a 400)");
  o.add(c, "--token-budget", cfg.token_budget, "tokens computed per step (prefill chunk size)");
  o.add(c, "--served-model-name", cfg.served_model_name, "model name(s) clients use, comma-separated (default: file name)");
  o.add(c, "--max-body-bytes", a->max_body_bytes, "largest accepted request body (413 beyond)");
  o.add_flag(c, "--allow-special-in-content", cfg.allow_special_in_content,
             "let message content produce control tokens (unsafe; the old behaviour)");
  o.add(c, "--drain-timeout", cfg.drain_timeout_s, "seconds to let in-flight requests finish after SIGTERM");
  o.add(c, "--max-n", cfg.max_n, "largest accepted 'n' (choices per request)");
  o.add(c, "--max-messages", cfg.max_messages, "most chat messages accepted in one request (400 beyond)");
  o.add_flag(c, "--no-prefix-cache", cfg.no_prefix_cache,
             "do not share KV blocks between requests with a common prompt prefix (on by default; "
             "off anyway for encoder-decoders and LongRoPE models)");
  o.add_flag(c, "--clean-up-tokenization-spaces", cfg.clean_up_spaces,
             "apply transformers' clean_up_tokenization to generated text (\" .\" -> \".\"); default: lossless");
  o.add(c, "--max-connections", cfg.max_connections,
        "open HTTP connections at most; beyond, the longest-idle one is closed (busy: 503, /health still answered)");
  o.add(c, "--max-connections-per-ip", cfg.max_connections_per_ip,
        "open HTTP connections per client address at most (its longest-idle one is closed beyond)");
  o.add(c, "--idle-timeout", cfg.idle_timeout_s, "seconds a kept-alive connection may wait for its next request");
  o.add(c, "--header-timeout", cfg.header_timeout_s,
        "seconds to send a request line and headers (a new connection: from connect)");
  c->add_option("--debug-load-delay-ms", a->load_delay_ms, "wait before loading (tests)")->group("");
  on_run(c, [a] { return run_serve(*a); });
}

}  // namespace ballast::cli
