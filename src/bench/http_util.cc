// The benchmark's blocking HTTP client (see http_util.h).
#include "bench/http_util.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace inferd::bench {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Url parse_url(const std::string& url) {
  return server::parse_http_url(url, "--base-url", "for example through a local proxy");
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
  if (endpoints_.empty()) {  // resolved once
    beast::error_code ec;
    net::ip::tcp::resolver resolver(ioc_);
    const auto resolved = resolver.resolve(base_.host, std::to_string(base_.port), ec);
    if (ec) fail("cannot resolve '{}': {}", base_.host, ec.message());
    endpoints_.assign(resolved.begin(), resolved.end());
  }
  server::ClientExchange x;
  x.stream = std::move(stream_);
  server::SendOptions o;
  o.arm_connect = o.arm = [this](beast::tcp_stream& s) { s.expires_after(timeout_); };
  server::SendResult sent = server::SendResult::kFailed;
  std::string out;
  net::co_spawn(
      ioc_,
      [&]() -> net::awaitable<void> {
        sent = co_await server::send_request(x, endpoints_, req, o);
        if (sent == server::SendResult::kSent && !co_await server::read_body(x, out, 1u << 30))
          sent = server::SendResult::kFailed;
      },
      net::detached);
  ioc_.restart();
  ioc_.run();
  if (sent == server::SendResult::kConnectFailed)
    fail("cannot connect to {}:{}: {}", base_.host, base_.port, x.ec.message());
  if (sent != server::SendResult::kSent)
    fail("request {} {} to {}:{} failed: {}", post ? "POST" : "GET", base_.path + path, base_.host,
         base_.port, x.ec.message());
  if (x.parser->get().keep_alive()) stream_ = std::move(x.stream);
  return HttpResult{int(x.parser->get().result_int()), std::move(out)};
}

std::string discover_model(const Url& base, const std::string& api_key) {
  SyncHttpClient c(base, api_key);
  const HttpResult r = c.get("/v1/models");
  if (r.status != 200) fail("GET /v1/models answered {}; pass --model NAME", r.status);
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
      j["data"][0].contains("id") && j["data"][0]["id"].is_string())
    return j["data"][0]["id"].get<std::string>();
  fail("GET /v1/models listed no model; pass --model NAME");
}

}  // namespace inferd::bench
