#include "bench/http_util.h"

#include <boost/asio/connect.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <limits>

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

void SyncHttpClient::connect() {
  beast::error_code ec;
  net::ip::tcp::resolver resolver(ioc_);
  auto eps = resolver.resolve(base_.host, std::to_string(base_.port), ec);
  if (ec) fail("cannot resolve '{}': {}", base_.host, ec.message());
  stream_ = std::make_unique<beast::tcp_stream>(ioc_);
  stream_->expires_after(timeout_);
  stream_->async_connect(eps, [&](beast::error_code e, const auto&) { ec = e; });
  ioc_.restart();
  ioc_.run();
  if (ec) {
    stream_.reset();
    fail("cannot connect to {}:{}: {}", base_.host, base_.port, ec.message());
  }
  stream_->socket().set_option(net::ip::tcp::no_delay(true), ec);
}

SyncHttpClient::StreamResult SyncHttpClient::post_stream(
    const std::string& path, const std::string& body,
    const std::function<void(std::string_view)>& on_data,
    const std::function<bool()>& should_stop) {
  http::request<http::string_body> req{http::verb::post, base_.path + path, 11};
  req.set(http::field::host, base_.host_header());
  req.set(http::field::user_agent, "inferd");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "text/event-stream");
  req.keep_alive(true);
  if (!api_key_.empty()) req.set(http::field::authorization, "Bearer " + api_key_);
  req.body() = body;
  req.prepare_payload();
  // A fresh connection: a stopped stream leaves its connection unusable.
  stream_.reset();
  connect();
  StreamResult out;
  beast::error_code ec;
  bool pending = false;
  // Runs the pending operation, polling should_stop; false when stopped (connection closed).
  auto wait = [&]() {
    for (;;) {
      if (pending) {
        ioc_.restart();
        ioc_.run_for(std::chrono::milliseconds(50));
      }
      if (should_stop()) {
        out.stopped = true;
        beast::error_code ignored;
        stream_->socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
        stream_->close();
        ioc_.restart();
        ioc_.run();  // let the cancelled operation finish
        stream_.reset();
        return false;
      }
      if (!pending) return true;
    }
  };
  auto failed = [&](const char* when) {
    stream_.reset();
    fail("POST {} to {}:{} failed {}: {}", base_.path + path, base_.host, base_.port, when,
         ec.message());
  };
  stream_->expires_after(timeout_);
  pending = true;
  http::async_write(*stream_, req, [&](beast::error_code e, size_t) {
    ec = e;
    pending = false;
  });
  if (!wait()) return out;
  if (ec) failed("sending the request");
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> p;
  p.body_limit(std::numeric_limits<std::uint64_t>::max());
  pending = true;
  http::async_read_header(*stream_, buf, p, [&](beast::error_code e, size_t) {
    ec = e;
    pending = false;
  });
  if (!wait()) return out;
  if (ec) failed("before the response");
  out.status = int(p.get().result_int());
  char chunk[8192];
  while (!p.is_done()) {
    p.get().body().data = chunk;
    p.get().body().size = sizeof(chunk);
    stream_->expires_after(timeout_);
    pending = true;
    http::async_read_some(*stream_, buf, p, [&](beast::error_code e, size_t) {
      ec = e;
      pending = false;
    });
    if (!wait()) return out;
    if (ec == http::error::need_buffer) ec = {};
    const size_t n = sizeof(chunk) - p.get().body().size;
    if (n > 0) {
      if (out.status == 200) {
        on_data(std::string_view(chunk, n));
      } else if (out.body.size() < (1u << 16)) {
        out.body.append(chunk, n);
      }
    }
    if (ec) failed("mid-response");
  }
  if (!p.keep_alive()) stream_.reset();
  return out;
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
    if (!stream_) connect();
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
