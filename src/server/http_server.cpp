// HTTP/1.1 transport: sockets, request parsing, keep-alive, chunked streaming.
// Deliberately small: the server speaks JSON and server-sent events to API clients.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

namespace ballast::server {

namespace {

using Clock = std::chrono::steady_clock;

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

// A Content-Length value: one or more digits and nothing else (no sign, list or suffix).
bool parse_length(const std::string& v, size_t& n) {
  if (v.empty() || v.size() > 18) return false;
  n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return true;
}

// A chunk-size line: hex digits, optionally followed by ";extension".
bool parse_chunk_size(std::string_view line, size_t& n) {
  size_t end = line.find(';');
  std::string_view hex = line.substr(0, end);
  while (!hex.empty() && (hex.back() == ' ' || hex.back() == '\t')) hex.remove_suffix(1);
  if (hex.empty() || hex.size() > 15) return false;
  n = 0;
  for (char c : hex) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return false;
    n = n * 16 + static_cast<size_t>(d);
  }
  return true;
}

bool send_all(int fd, std::string_view data, int timeout_ms = 30000) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      int r = ::poll(&p, 1, timeout_ms);
      if (r <= 0 || (p.revents & (POLLERR | POLLHUP))) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool peer_closed(int fd) {
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
  if (p.revents & POLLIN) {
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }
  return false;
}

std::string head(int status, const std::string& content_type, const HttpResponse& res, bool keep_alive,
                 const std::string& length_header) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  if (!content_type.empty()) h += "Content-Type: " + content_type + "\r\n";
  h += length_header;
  for (const auto& [k, v] : res.headers) h += k + ": " + v + "\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return h;
}

class ChunkedSink : public StreamSink {
 public:
  explicit ChunkedSink(int fd) : fd_(fd) {}
  bool write(std::string_view data) override {
    if (failed_) return false;
    if (data.empty()) return true;
    char hex[24];
    std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
    std::string out = hex;
    out.append(data);
    out += "\r\n";
    if (!send_all(fd_, out)) failed_ = true;
    return !failed_;
  }
  bool client_gone() override {
    if (!failed_ && peer_closed(fd_)) failed_ = true;
    return failed_;
  }
  bool finish() { return !failed_ && send_all(fd_, "0\r\n\r\n"); }
  bool failed() const { return failed_; }

 private:
  int fd_;
  bool failed_ = false;
};

// Buffered reader over one connection.
class Reader {
 public:
  Reader(int fd, const std::atomic<bool>& closing) : fd_(fd), closing_(closing) {}
  std::string buf;
  // Reads more bytes. idle: no request under way (gives up at shutdown). 1 ok, 0 EOF, -1 timeout/error.
  int more(Clock::time_point deadline, bool idle) {
    while (true) {
      if (idle && closing_) return -1;
      if (Clock::now() >= deadline) return -1;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, 200);
      if (r < 0 && errno != EINTR) return -1;
      if (r <= 0) continue;
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return 0;
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return -1;
      }
      buf.append(tmp, static_cast<size_t>(n));
      return 1;
    }
  }

 private:
  int fd_;
  const std::atomic<bool>& closing_;
};

// Connection threads need little stack (request parsing and handlers keep their data on
// the heap; JSON nesting is capped at 64 before parsing); the 8 MiB default only costs
// address space. Sanitizers inflate frames, so they get more.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kConnStack = 8u << 20;
#else
constexpr size_t kConnStack = 1u << 20;
#endif

// Runs f on a detached thread with kConnStack of stack; false if no thread could start.
bool spawn_detached(std::function<void()> f) {
  auto fn = std::make_unique<std::function<void()>>(std::move(f));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kConnStack);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int rc = pthread_create(
      &t, &attr,
      [](void* p) -> void* {
        std::unique_ptr<std::function<void()>> g(static_cast<std::function<void()>*>(p));
        (*g)();
        return nullptr;
      },
      fn.get());
  pthread_attr_destroy(&attr);
  if (rc != 0) return false;
  fn.release();
  return true;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

HttpServer::HttpServer(HttpServerOptions opts)
    : opts_(std::move(opts)), table_(opts_.max_connections, opts_.max_connections_per_ip) {}

HttpServer::~HttpServer() {
  stop_accepting();
  if (accept_thread_.joinable()) accept_thread_.join();
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler h) {
  routes_[{method, path}] = std::move(h);
}

bool HttpServer::bind(const std::string& host, int port, std::string& err) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    err = "cannot resolve --host " + host + ": " + gai_strerror(rc);
    return false;
  }
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      listen_fd_ = fd;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      break;
    }
    err = std::string("cannot listen on ") + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return listen_fd_ >= 0;
}

void HttpServer::start() {
  // Every connection is a descriptor: make room for the limits when the hard limit allows.
  rlimit rl{};
  const rlim_t want = opts_.max_connections + opts_.overflow_connections + 256;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  accept_thread_ = std::thread([this] { accept_loop(); });
}

void HttpServer::stop_accepting() { stopping_ = true; }

void HttpServer::shutdown(int timeout_ms) {
  stop_accepting();
  if (accept_thread_.joinable()) accept_thread_.join();
  closing_ = true;
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return n_conns_ == 0; });
}

void HttpServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 200);
    if (r <= 0) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: free an idle connection (or wait for one) instead of spinning
      // on a listening socket that stays readable.
      if ((errno == EMFILE || errno == ENFILE) && !table_.evict_idle())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char addr[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, addr, sizeof addr);
    else if (ss.ss_family == AF_INET6) ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, addr, sizeof addr);
    std::string remote(addr);
    uint64_t conn = table_.admit(fd, remote);
    if (conn == 0 && n_overflow_ >= opts_.overflow_connections) {
      HttpResponse res = opts_.error_response(503, "too many connections");
      // One non-blocking try: the accept loop never waits on a client.
      send_all(fd, head(503, res.content_type, res, false, "Content-Length: " + std::to_string(res.body.size()) + "\r\n") + res.body, 0);
      ::close(fd);
      continue;
    }
    spawn_connection(fd, std::move(remote), conn, conn == 0);
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void HttpServer::spawn_connection(int fd, std::string remote, uint64_t conn, bool overflow) {
  n_conns_++;
  if (overflow) n_overflow_++;
  auto done = [this, fd, conn, overflow] {
    if (conn) table_.release(conn);  // before close: the table may shutdown() this fd until then
    ::close(fd);
    if (overflow) n_overflow_--;
    std::lock_guard<std::mutex> lk(mu_);
    n_conns_--;
    cv_.notify_all();
  };
  bool ok = spawn_detached([this, fd, remote, conn, overflow, done] {
    serve_connection(fd, remote, conn, overflow);
    done();
  });
  if (!ok) done();
}

void HttpServer::dispatch(HttpRequest& req, HttpResponse& res) {
  auto it = routes_.find({req.method, req.path});
  if (it != routes_.end()) it->second(req, res);
  else if (fallback_) fallback_(req, res);
  else res = opts_.error_response(404, "no route for " + req.method + " " + req.path);
}

void HttpServer::serve_connection(int fd, std::string remote, uint64_t conn, bool overflow) {
  Reader rd(fd, closing_);
  bool first = true;
  auto reply_error = [&](int status, const std::string& msg) {
    HttpResponse res = opts_.error_response(status, msg);
    send_all(fd, head(status, res.content_type, res, false, "Content-Length: " + std::to_string(res.body.size()) + "\r\n") +
                     res.body);
  };
  while (true) {
    // Headers. A new connection must send its request line and headers within the header
    // timeout (slowloris); a kept-alive one may idle, evictably, until its next request's
    // first byte, which starts the same timeout.
    const auto header_time = overflow ? std::chrono::seconds(2) : std::chrono::seconds(opts_.header_timeout_s);
    auto idle_deadline = Clock::now() + (first ? header_time : std::chrono::seconds(opts_.idle_timeout_s));
    auto header_deadline = first ? idle_deadline : Clock::time_point::max();
    first = false;
    bool busy = false;
    if (conn) table_.set_idle(conn);
    size_t hend;
    while (true) {
      if (!busy && !rd.buf.empty()) {
        if (conn && !table_.set_busy(conn)) return;  // evicted while idle
        busy = true;
        header_deadline = std::min(header_deadline, Clock::now() + header_time);
      }
      if ((hend = rd.buf.find("\r\n\r\n")) != std::string::npos) break;
      if (rd.buf.size() > opts_.max_header_bytes) return reply_error(431, "request headers too large");
      int r = rd.more(busy ? header_deadline : idle_deadline, !busy);
      if (r <= 0) {
        if (busy && r < 0) reply_error(408, "request timed out");
        return;
      }
    }
    const auto deadline = Clock::now() + std::chrono::seconds(opts_.read_timeout_s);
    if (hend > opts_.max_header_bytes) return reply_error(431, "request headers too large");
    HttpRequest req;
    req.remote = remote;
    std::string_view hv(rd.buf.data(), hend);
    size_t le = hv.find("\r\n");
    std::string_view line = hv.substr(0, le);
    size_t s1 = line.find(' '), s2 = line.rfind(' ');
    if (s1 == std::string_view::npos || s2 == s1) return reply_error(400, "malformed request line");
    req.method = std::string(line.substr(0, s1));
    std::string target(line.substr(s1 + 1, s2 - s1 - 1));
    std::string version(line.substr(s2 + 1));
    if (version != "HTTP/1.1" && version != "HTTP/1.0") {
      if (version.rfind("HTTP/", 0) == 0)
        return reply_error(505, "HTTP version '" + version.substr(0, 16) + "' is not supported (HTTP/1.0 and 1.1 are)");
      return reply_error(400, "malformed request line");
    }
    if (auto q = target.find('?'); q != std::string::npos) req.query = target.substr(q + 1), target.resize(q);
    req.path = target;
    size_t pos = le == std::string_view::npos ? hv.size() : le + 2;
    while (pos < hv.size()) {
      size_t e = hv.find("\r\n", pos);
      if (e == std::string_view::npos) e = hv.size();
      std::string_view h = hv.substr(pos, e - pos);
      size_t c = h.find(':');
      if (c == std::string_view::npos) return reply_error(400, "malformed header line");
      std::string name = lower(std::string(h.substr(0, c)));
      if (name.empty() || name.find_first_of(" \t") != std::string::npos)
        return reply_error(400, "malformed header line");
      if ((name == "content-length" || name == "transfer-encoding") && req.header(name))
        return reply_error(400, "duplicate " + name + " header");
      req.headers.emplace_back(std::move(name), trim(h.substr(c + 1)));
      pos = e + 2;
    }
    rd.buf.erase(0, hend + 4);
    if (overflow && !((req.method == "GET" || req.method == "HEAD") && req.path == "/health"))
      return reply_error(503, "too many connections: every connection slot is busy (--max-connections " +
                                  std::to_string(opts_.max_connections) + ", --max-connections-per-ip " +
                                  std::to_string(opts_.max_connections_per_ip) + "); retry later");
    bool keep_alive = version != "HTTP/1.0" && !overflow;
    if (auto* c = req.header("connection")) {
      std::string v = lower(*c);
      if (v.find("close") != std::string::npos) keep_alive = false;
      if (v.find("keep-alive") != std::string::npos) keep_alive = true;
    }
    // Body.
    const std::string* te = req.header("transfer-encoding");
    const std::string* cl = req.header("content-length");
    auto send_continue = [&] {
      if (auto* ex = req.header("expect"); ex && lower(*ex) == "100-continue")
        send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    };
    if (te && cl) return reply_error(400, "both Transfer-Encoding and Content-Length given");
    if (te && lower(*te) != "chunked")
      return reply_error(501, "Transfer-Encoding '" + te->substr(0, 64) + "' is not supported (only 'chunked')");
    if (te) {
      send_continue();
      size_t p = 0;
      while (true) {
        size_t e;
        while ((e = rd.buf.find("\r\n", p)) == std::string::npos)
          if (rd.more(deadline, false) <= 0) return reply_error(400, "incomplete chunked body");
        size_t n = 0;
        if (!parse_chunk_size(std::string_view(rd.buf).substr(p, e - p), n))
          return reply_error(400, "malformed chunk size");
        if (req.body.size() + n > opts_.max_body_bytes)
          return reply_error(413, "request body exceeds --max-body-bytes (" + std::to_string(opts_.max_body_bytes) + ")");
        while (rd.buf.size() < e + 2 + n + 2)
          if (rd.more(deadline, false) <= 0) return reply_error(400, "incomplete chunked body");
        if (rd.buf.compare(e + 2 + n, 2, "\r\n") != 0) return reply_error(400, "malformed chunked body");
        req.body.append(rd.buf, e + 2, n);
        p = e + 2 + n + 2;
        if (n == 0) break;
      }
      rd.buf.erase(0, p);  // trailers are not supported (none expected from API clients)
    } else if (cl) {
      size_t n = 0;
      if (!parse_length(*cl, n)) return reply_error(400, "malformed Content-Length (want digits only)");
      if (n > opts_.max_body_bytes)
        return reply_error(413, "request body of " + std::to_string(n) + " bytes exceeds --max-body-bytes (" +
                                    std::to_string(opts_.max_body_bytes) + ")");
      if (rd.buf.size() < n) send_continue();
      // One buffer of the body's size: no growth doubling, and moved (not copied) into the
      // request when nothing is pipelined behind it.
      rd.buf.reserve(n);
      while (rd.buf.size() < n)
        if (rd.more(deadline, false) <= 0) return reply_error(400, "incomplete request body");
      if (rd.buf.size() == n) {
        req.body = std::move(rd.buf);
        rd.buf.clear();
      } else {
        req.body = rd.buf.substr(0, n);
        rd.buf.erase(0, n);
      }
    }
    req.client_gone = [fd] { return peer_closed(fd); };
    // HEAD: the GET route's status and headers without the body.
    const bool head_only = req.method == "HEAD";
    if (head_only) req.method = "GET";
    HttpResponse res;
    dispatch(req, res);
    if (head_only) res.stream = nullptr;
    if (closing_) keep_alive = false;
    if (res.stream) {
      if (!send_all(fd, head(res.status, res.content_type, res, keep_alive, "Transfer-Encoding: chunked\r\n"))) return;
      ChunkedSink sink(fd);
      res.stream(sink);
      if (!sink.finish()) return;
    } else {
      if (!send_all(fd, head(res.status, res.content_type, res, keep_alive,
                             "Content-Length: " + std::to_string(res.body.size()) + "\r\n") +
                            (head_only ? std::string() : res.body)))
        return;
    }
    if (!keep_alive || closing_) return;
  }
}

}  // namespace ballast::server
