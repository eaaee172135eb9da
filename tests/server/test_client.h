// A small blocking HTTP/1.1 client for server tests (Beast over a loopback socket, every read
// bounded by a socket timeout).
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace inferd::server::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

inline void set_timeouts(tcp::socket& s, int seconds) {
  timeval tv{seconds, 0};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// One connection; several requests may go over it (keep-alive).
class TestConnection {
 public:
  explicit TestConnection(uint16_t port, int timeout_s = 20) : socket_(io_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    set_timeouts(socket_, timeout_s);
  }
  tcp::socket& socket() { return socket_; }

  void send(http::verb method, const std::string& target, const std::string& body,
            const std::vector<std::pair<std::string, std::string>>& headers = {},
            bool keep_alive = true) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.keep_alive(keep_alive);
    req.prepare_payload();
    http::write(socket_, req);
  }

  HttpResult receive() {
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    HttpResult r;
    r.status = res.result_int();
    for (const auto& f : res) {
      std::string k(f.name_string());
      for (auto& c : k) c = char(std::tolower(static_cast<unsigned char>(c)));
      r.headers[k] = std::string(f.value());
    }
    r.body = res.body();
    return r;
  }

  HttpResult request(http::verb method, const std::string& target, const std::string& body = "",
                     const std::vector<std::pair<std::string, std::string>>& headers = {},
                     bool keep_alive = true) {
    send(method, target, body, headers, keep_alive);
    return receive();
  }

  // Reads the status line and headers of a response only (a stream in progress).
  int read_header() {
    parser_.emplace();
    parser_->body_limit(1ull << 30);
    http::read_header(socket_, buffer_, *parser_);
    return parser_->get().result_int();
  }
  // After read_header: reads some body bytes (at least one chunk).
  std::string read_some_body() {
    std::string out;
    char buf[4096];
    parser_->get().body().clear();
    beast::error_code ec;
    // Feed raw reads into the parser until it has produced body bytes.
    while (parser_->get().body().empty() && !parser_->is_done()) {
      http::read_some(socket_, buffer_, *parser_, ec);
      if (ec) break;
    }
    (void)buf;
    out = parser_->get().body();
    return out;
  }
  void close() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  net::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

inline HttpResult http_call(uint16_t port, http::verb method, const std::string& target,
                            const std::string& body = "",
                            const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  TestConnection c(port);
  return c.request(method, target, body, headers, false);
}

inline HttpResult post(uint16_t port, const std::string& target, const nlohmann::json& body,
                       const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return http_call(port, http::verb::post, target, body.dump(), headers);
}

inline HttpResult get(uint16_t port, const std::string& target,
                      const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return http_call(port, http::verb::get, target, "", headers);
}

// The JSON payloads of an SSE body ("data: ..." events); "[DONE]" is kept as a string.
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    std::string ev = body.substr(pos, end - pos);
    if (ev.rfind("data: ", 0) == 0) out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

// Value of one metric line (`name{...labels...} value`) whose text contains `match`.
inline double metric_value(const std::string& page, const std::string& name,
                           const std::string& match = "") {
  size_t pos = 0;
  while ((pos = page.find(name, pos)) != std::string::npos) {
    const size_t eol = page.find('\n', pos);
    const std::string line = page.substr(pos, eol - pos);
    const bool line_start = pos == 0 || page[pos - 1] == '\n';
    pos = eol;
    if (line_start && line.size() > name.size() &&
        (line[name.size()] == '{' || line[name.size()] == ' ') &&
        line.find(match) != std::string::npos)
      return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

}  // namespace inferd::server::testing
