// The HTTP/1.1 client `inferd router` (upstream requests, health checks) and `inferd bench` (the
// load generator, its set-up requests, `inferd chat --url`) share: http:// URLs, and sending a
// request on a kept-alive connection with one retry on a fresh connection when the peer closed
// the kept one meanwhile (the retry each of them used to write out), then reading the response's
// header; the body is the caller's (streamed through, or read whole with read_body).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace inferd::server {

// http://host[:port][/path]; IPv6 hosts in brackets.
struct HttpUrl {
  std::string url;  // normalised: http://host_header()path
  std::string host;
  uint16_t port = 80;
  std::string path;                 // "" or "/prefix", without a trailing '/'
  std::string host_header() const;  // host[:port], IPv6 in brackets
};
// Throws Error "<what> '<url>': ..." naming what is wrong ("expected
// http://HOST[:PORT][/<path_name>]"); https is refused, with `https_hint` (why, or what to do
// instead) after "use http://".
HttpUrl parse_http_url(const std::string& url, std::string_view what,
                       std::string_view https_hint = "", std::string_view path_name = "PATH");

// True for the errors a kept-alive connection that the peer closed meanwhile gives on the next
// write or read (reset, EOF, broken pipe, a response cut short).
bool is_stale_connection(const boost::beast::error_code& ec);

// One request's client side: the connection, its read buffer, the response parser (header read
// by send_request; the body read by the caller), and the last error.
struct ClientExchange {
  std::unique_ptr<boost::beast::tcp_stream> stream;
  boost::beast::flat_buffer buf;
  std::optional<boost::beast::http::response_parser<boost::beast::http::buffer_body>> parser;
  boost::beast::error_code ec;
};

struct SendOptions {
  // Deadlines: before connecting, and before the write and the header's read.
  std::function<void(boost::beast::tcp_stream&)> arm_connect;
  std::function<void(boost::beast::tcp_stream&)> arm;
  // Checked after each step; true ends the exchange (kCancelled).
  std::function<bool()> cancelled;
  // Told of the connection about to carry the request (pooled or fresh).
  std::function<void(boost::beast::tcp_stream&)> on_stream;
};

enum class SendResult {
  kSent,           // the response's header is in x.parser
  kConnectFailed,  // x.ec says why
  kFailed,         // writing or reading the header failed: x.ec says why
  kCancelled,
};

// Sends `req` on x.stream when it holds a kept-alive connection, else on a new connection to
// `endpoints`; a kept-alive connection that turns out closed (is_stale_connection) is replaced
// by a fresh one once. On return x.stream is the connection used (unconnected after a failed
// connect).
boost::asio::awaitable<SendResult> send_request(
    ClientExchange& x, const std::vector<boost::asio::ip::tcp::endpoint>& endpoints,
    const boost::beast::http::request<boost::beast::http::string_body>& req,
    const SendOptions& options);

// Reads the rest of the body (after send_request) into `out`; more than `limit` bytes is
// http::error::body_limit. False on an error (x.ec).
boost::asio::awaitable<bool> read_body(ClientExchange& x, std::string& out, size_t limit);

}  // namespace inferd::server
