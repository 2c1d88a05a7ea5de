// A small HTTP/1.1 server on POSIX sockets: one thread per connection, keep-alive,
// Content-Length and chunked request bodies with a size cap, chunked streaming
// responses with client-disconnect detection, and a graceful stop. Connection limits
// (total and per peer address) evict the longest-idle connection; when every connection
// is busy a newcomer still gets /health answered (or a 503).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "server/conn_table.h"

namespace ballast::server {

struct HttpRequest {
  std::string method, path, query;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote;
  // True once the client has closed its side of the connection (checked without blocking).
  std::function<bool()> client_gone;

  const std::string* header(std::string_view name) const;
};

// Writes the body of a streamed (chunked) response.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // False when the client is gone; the caller should stop and clean up.
  virtual bool write(std::string_view data) = 0;
  virtual bool client_gone() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, headers go out with Transfer-Encoding: chunked and this writes the body.
  std::function<void(StreamSink&)> stream;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

struct HttpServerOptions {
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 64u << 10;
  size_t max_connections = 1024;
  size_t max_connections_per_ip = 256;
  int idle_timeout_s = 60;    // keep-alive connection waiting for its next request
  int header_timeout_s = 10;  // a new connection's first request line + headers; later ones from their first byte
  int read_timeout_s = 30;    // a request's body, from the end of its headers
  size_t overflow_connections = 64;  // beyond the limits: answered /health or 503 at once, 2 s deadline
  // Answer for bodies over max_body_bytes, and for malformed requests (status, body).
  std::function<HttpResponse(int status, const std::string& message)> error_response;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions opts);
  ~HttpServer();

  // Exact-path routes; `fallback` handles everything else (404/405).
  void route(const std::string& method, const std::string& path, HttpHandler h);
  void set_fallback(HttpHandler h) { fallback_ = std::move(h); }

  // Binds and listens; false with `err` set on failure. Port 0 picks a free port.
  bool bind(const std::string& host, int port, std::string& err);
  int port() const { return port_; }
  // Accept loop in a background thread.
  void start();
  // Stops accepting new connections (listening socket closed).
  void stop_accepting();
  // Closes idle keep-alive connections and waits up to timeout_ms for busy ones.
  void shutdown(int timeout_ms);
  size_t active_connections() const { return n_conns_; }
  // Connections within the limits (not counting overflow answers) and evictions so far.
  size_t connections() const { return table_.size(); }
  uint64_t evictions() const { return table_.evictions(); }

 private:
  void accept_loop();
  // conn: the ConnTable id (0 for an overflow connection: one request, /health or 503).
  void serve_connection(int fd, std::string remote, uint64_t conn = 0, bool overflow = false);
  void spawn_connection(int fd, std::string remote, uint64_t conn, bool overflow);
  void dispatch(HttpRequest& req, HttpResponse& res);

  HttpServerOptions opts_;
  std::map<std::pair<std::string, std::string>, HttpHandler> routes_;
  HttpHandler fallback_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false}, closing_{false};
  std::atomic<size_t> n_conns_{0}, n_overflow_{0};
  ConnTable table_;
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace ballast::server
