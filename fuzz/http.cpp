// HTTP/1.1 request parsing. The parser lives inside HttpServer::serve_connection, which
// reads from a socket, so the target runs the real server once (127.0.0.1, ephemeral port)
// and sends each input over a fresh connection: request line, headers, Content-Length and
// chunked bodies, keep-alive pipelining, HEAD, Expect: 100-continue, streamed responses.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "server/http_server.h"

using namespace ballast::server;

namespace {

HttpServer* server() {
  static HttpServer* s = [] {
    HttpServerOptions o;
    o.max_body_bytes = 4096;
    o.max_header_bytes = 2048;
    o.idle_timeout_s = 5;
    o.read_timeout_s = 5;
    o.error_response = [](int status, const std::string& msg) {
      HttpResponse r;
      r.status = status;
      r.body = "{\"error\":\"" + msg + "\"}";
      return r;
    };
    auto* srv = new HttpServer(o);
    srv->route("POST", "/echo", [](const HttpRequest& q, HttpResponse& r) {
      r.body = q.body + q.query;
      for (auto& [k, v] : q.headers) r.headers.emplace_back("x-" + k.substr(0, 8), v.substr(0, 8));
    });
    srv->route("GET", "/stream", [](const HttpRequest& q, HttpResponse& r) {
      r.content_type = "text/event-stream";
      r.stream = [](StreamSink& s) {
        for (int i = 0; i < 3 && s.write("data: x\n\n"); ++i) {}
      };
    });
    srv->set_fallback([](const HttpRequest& q, HttpResponse& r) { r.status = 404; });
    std::string err;
    if (!srv->bind("127.0.0.1", 0, err)) __builtin_trap();
    srv->start();
    return srv;
  }();
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int port = server()->port();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) __builtin_trap();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) __builtin_trap();
  size_t off = 0;
  while (off < size) {
    ssize_t n = ::send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before reading everything
    off += n;
  }
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {}  // until the server closes the connection
  ::close(fd);
  return 0;
}
