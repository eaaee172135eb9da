// The shared HTTP client (see http_client.h).
#include "server/http_client.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <limits>

#include "core/error.h"

namespace inferd::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string HttpUrl::host_header() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == 80 ? h : h + ":" + std::to_string(port);
}

HttpUrl parse_http_url(const std::string& url, std::string_view what, std::string_view https_hint,
                       std::string_view path_name) {
  if (!url.starts_with("http://")) {
    if (url.starts_with("https://"))
      fail("{} '{}': https is not supported; use http://{}{}{}", what, url,
           https_hint.empty() ? "" : " (", https_hint, https_hint.empty() ? "" : ")");
    fail("{} '{}': expected http://HOST[:PORT][/{}]", what, url, path_name);
  }
  HttpUrl a;
  const std::string rest = url.substr(7);
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) a.path = rest.substr(slash);
  while (!a.path.empty() && a.path.back() == '/') a.path.pop_back();
  std::string port;
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string::npos) fail("{} '{}': unterminated IPv6 address", what, url);
    a.host = hostport.substr(1, close - 1);
    const std::string after = hostport.substr(close + 1);
    if (!after.empty() && after.front() != ':')
      fail("{} '{}': expected ':' after the IPv6 address", what, url);
    if (!after.empty()) port = after.substr(1);
  } else {
    const size_t colon = hostport.find(':');
    a.host = hostport.substr(0, colon);
    if (colon != std::string::npos) port = hostport.substr(colon + 1);
  }
  if (a.host.empty()) fail("{} '{}': no host", what, url);
  if (!port.empty() || hostport.ends_with(":")) {
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(port, &used);
    } catch (const std::exception&) {
    }
    if (used != port.size() || v <= 0 || v > 65535)
      fail("{} '{}': port '{}' is not a number in 1..65535", what, url, port);
    a.port = uint16_t(v);
  }
  a.url = "http://" + a.host_header() + a.path;
  return a;
}

bool is_stale_connection(const beast::error_code& ec) {
  return ec == net::error::connection_reset || ec == net::error::eof ||
         ec == http::error::end_of_stream || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == http::error::partial_message;
}

net::awaitable<SendResult> send_request(ClientExchange& x, const std::vector<tcp::endpoint>& eps,
                                        const http::request<http::string_body>& req,
                                        const SendOptions& o) {
  auto cancelled = [&] { return o.cancelled && o.cancelled(); };
  beast::error_code& ec = x.ec;
  bool reused = x.stream != nullptr;
  for (;;) {
    if (!x.stream) {
      x.stream = std::make_unique<beast::tcp_stream>(co_await net::this_coro::executor);
      if (o.on_stream) o.on_stream(*x.stream);
      if (o.arm_connect) o.arm_connect(*x.stream);
      co_await x.stream->async_connect(eps, net::redirect_error(net::use_awaitable, ec));
      if (cancelled()) co_return SendResult::kCancelled;
      if (ec) co_return SendResult::kConnectFailed;
      beast::error_code ignored;
      x.stream->socket().set_option(tcp::no_delay(true), ignored);
    } else if (o.on_stream) {
      o.on_stream(*x.stream);
    }
    if (o.arm) o.arm(*x.stream);
    co_await http::async_write(*x.stream, req, net::redirect_error(net::use_awaitable, ec));
    if (cancelled()) co_return SendResult::kCancelled;
    if (!ec) {
      x.buf.clear();
      x.parser.emplace();
      x.parser->body_limit(std::numeric_limits<uint64_t>::max());  // (boost::none: broken in 1.74)
      co_await http::async_read_header(*x.stream, x.buf, *x.parser,
                                       net::redirect_error(net::use_awaitable, ec));
      if (cancelled()) co_return SendResult::kCancelled;
    }
    if (ec && reused && is_stale_connection(ec)) {
      // The kept-alive connection was closed by the peer meanwhile: once more, fresh.
      x.stream.reset();
      reused = false;
      continue;
    }
    co_return ec ? SendResult::kFailed : SendResult::kSent;
  }
}

net::awaitable<bool> read_body(ClientExchange& x, std::string& out, size_t limit) {
  auto& p = *x.parser;
  char chunk[16384];
  while (!p.is_done()) {
    p.get().body().data = chunk;
    p.get().body().size = sizeof(chunk);
    co_await http::async_read_some(*x.stream, x.buf, p,
                                   net::redirect_error(net::use_awaitable, x.ec));
    if (x.ec == http::error::need_buffer) x.ec = {};
    out.append(chunk, sizeof(chunk) - p.get().body().size);
    if (!x.ec && out.size() > limit) x.ec = http::error::body_limit;
    if (x.ec) co_return false;
  }
  co_return true;
}

}  // namespace inferd::server
