#include "bench/http_util.h"

#include <boost/asio/connect.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "core/error.h"

namespace inferd::bench {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string Url::host_header() const {
  return port == 80 ? host : host + ":" + std::to_string(port);
}

Url parse_url(const std::string& url) {
  std::string rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    fail(
        "--base-url '{}': https is not supported; use http:// (for example through a local "
        "proxy)",
        url);
  } else {
    fail("--base-url '{}': expected http://HOST[:PORT][/PATH]", url);
  }
  Url u;
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) u.path = rest.substr(slash);
  while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  if (!hostport.empty() && hostport.front() == '[') {  // [v6]:port
    const size_t close = hostport.find(']');
    if (close == std::string::npos) fail("--base-url '{}': unterminated IPv6 address", url);
    u.host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport.front() != ':')
      fail("--base-url '{}': expected ':' after the IPv6 address", url);
  } else {
    const size_t colon = hostport.find(':');
    u.host = hostport.substr(0, colon);
    hostport = colon == std::string::npos ? "" : hostport.substr(colon);
  }
  if (u.host.empty()) fail("--base-url '{}': no host", url);
  if (!hostport.empty()) {
    const std::string p = hostport.substr(1);
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(p, &used);
    } catch (const std::exception&) {
    }
    if (used != p.size() || v <= 0 || v > 65535)
      fail("--base-url '{}': port '{}' is not a number in 1..65535", url, p);
    u.port = uint16_t(v);
  }
  return u;
}

SyncHttpClient::SyncHttpClient(Url base, std::string api_key, std::chrono::milliseconds timeout)
    : base_(std::move(base)), api_key_(std::move(api_key)), timeout_(timeout) {}

SyncHttpClient::~SyncHttpClient() = default;

HttpResult SyncHttpClient::get(const std::string& path) {
  return request(false, path, "");
}

HttpResult SyncHttpClient::post_json(const std::string& path, const std::string& body) {
  return request(true, path, body);
}

HttpResult SyncHttpClient::request(bool post, const std::string& path, const std::string& body) {
  http::request<http::string_body> req{post ? http::verb::post : http::verb::get, base_.path + path,
                                       11};
  req.set(http::field::host, base_.host_header());
  req.set(http::field::user_agent, "inferd-bench");
  req.keep_alive(true);
  if (!api_key_.empty()) req.set(http::field::authorization, "Bearer " + api_key_);
  if (post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  // Each step runs asynchronously so that the stream's deadline applies (beast::tcp_stream
  // timeouts cover asynchronous operations only).
  auto wait = [&](beast::error_code& out) {
    ioc_.restart();
    ioc_.run();
    return !out;
  };
  // One retry on a fresh connection when a kept-alive one turns out closed.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = stream_ != nullptr;
    beast::error_code ec;
    if (!stream_) {
      net::ip::tcp::resolver resolver(ioc_);
      auto eps = resolver.resolve(base_.host, std::to_string(base_.port), ec);
      if (ec) fail("cannot resolve '{}': {}", base_.host, ec.message());
      stream_ = std::make_unique<beast::tcp_stream>(ioc_);
      stream_->expires_after(timeout_);
      stream_->async_connect(eps, [&](beast::error_code e, const auto&) { ec = e; });
      if (!wait(ec)) {
        stream_.reset();
        fail("cannot connect to {}:{}: {}", base_.host, base_.port, ec.message());
      }
      stream_->socket().set_option(net::ip::tcp::no_delay(true), ec);
    }
    stream_->expires_after(timeout_);
    http::async_write(*stream_, req, [&](beast::error_code e, size_t) { ec = e; });
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    if (wait(ec)) {
      http::async_read(*stream_, buf, res, [&](beast::error_code e, size_t) { ec = e; });
      wait(ec);
    }
    if (ec) {
      stream_.reset();
      if (reused && ec != beast::error::timeout) continue;
      fail("request {} {} to {}:{} failed: {}", post ? "POST" : "GET", base_.path + path,
           base_.host, base_.port, ec.message());
    }
    if (!res.keep_alive()) stream_.reset();
    return HttpResult{int(res.result_int()), std::move(res.body())};
  }
  fail("request {} {} to {}:{} failed", post ? "POST" : "GET", base_.path + path, base_.host,
       base_.port);
}

}  // namespace inferd::bench
