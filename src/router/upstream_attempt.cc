// One attempt of a proxied request on one replica: the request sent on a pooled (or fresh)
// connection, the response's header read, its body passed through to the client (a stream chunk
// by chunk once it is past its preamble, anything else whole), and the outcome: answered, or
// failed in a way another replica may retry.
#include "router/proxy_job.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <limits>
#include <optional>

#include "core/logging.h"
#include "router/sse_passthrough.h"
#include "server/api_error.h"

namespace inferd::router {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using server::ApiError;

// One attempt's side towards the replica: the connection, its read buffer, the response parser,
// and the first error of the exchange.
struct UpstreamExchange : server::ClientExchange {};

// What of the response the client has (or is yet to get).
struct ResponseRelay {
  Clock::time_point start = Clock::now();  // the attempt's
  int status = 0;
  bool chunked = false;
  Headers headers;              // the client's
  std::optional<UsageTap> tap;  // tokens-per-minute accounting of a stream
  std::string held;             // body bytes not yet passed on
  bool committed = false;       // the client's stream has begun
  double first_byte_s = -1;
};

namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

bool is_reset(const beast::error_code& ec) {
  return server::is_stale_connection(ec);
}

Router::Attempt failed(std::string reason) {
  Router::Attempt a;
  a.reason = std::move(reason);
  return a;
}

http::request<http::string_body> upstream_request(const ProxyJob& job, const BackendAddress& a) {
  http::request<http::string_body> req{job.method, a.path + job.ex.target, 11};
  req.set(http::field::host, a.host_header());
  req.set(http::field::user_agent, "inferd-router");
  for (const auto& [k, v] : job.forward) req.set(k, v);
  req.keep_alive(true);
  req.body() = job.body;
  req.prepare_payload();
  return req;
}

// The response's status and the headers the client gets: the replica's that matter, the CORS
// headers and X-Inferd-Replica. A 200 stream is tapped for its usage when tokens are counted.
void begin_relay(const ProxyJob& job, const std::string& url,
                 const http::response<http::buffer_body>& res, bool chunked, ResponseRelay& r) {
  r.status = int(res.result_int());
  for (const auto& f : res) {
    const auto name = f.name();
    if (name == http::field::content_type || name == http::field::cache_control ||
        name == http::field::retry_after || name == http::field::www_authenticate ||
        beast::iequals(f.name_string(), "Content-Security-Policy") ||
        beast::iequals(f.name_string(), "X-Content-Type-Options") ||
        beast::iequals(f.name_string(), "X-Request-Id"))
      r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  r.headers.insert(r.headers.end(), job.ex.cors.begin(), job.ex.cors.end());
  r.headers.emplace_back("X-Inferd-Replica", url);
  r.chunked = chunked;
  if (job.count_usage && r.chunked && r.status == 200) r.tap.emplace(job.strip_usage_event);
}

// Body bytes to the client: straight on once the stream is committed; until then held, and a 200
// stream commits (its status line and headers go out) once ready_to_commit says so. A body that
// is not a stream and outgrows 256 MiB sets `ec`.
void pass_on(ProxyJob& job, ResponseRelay& r, std::string_view bytes, beast::error_code& ec) {
  if (bytes.empty()) return;
  if (r.committed) {
    job.conn->write_chunk(std::string(bytes));
    return;
  }
  r.held.append(bytes);
  if (r.chunked && r.status == 200 && ready_to_commit(r.held)) {
    Headers h = r.headers;
    job.conn->begin_stream(http::status(r.status), std::move(h));
    job.conn->write_chunk(std::move(r.held));
    r.held.clear();
    r.committed = true;
  } else if (!r.chunked && r.held.size() > (256u << 20)) {
    ec = http::error::body_limit;
  }
}

}  // namespace

void Router::mark_failed(Replica& rep, const std::string& why) {
  table_.mark_failed(rep, why);
  pool_.drop(rep.id());
}

void Router::arm_timeout(beast::tcp_stream& s) const {
  if (config_.request_timeout_s > 0)
    s.expires_after(from_seconds(config_.request_timeout_s));
  else
    s.expires_never();
}

net::awaitable<Router::Attempt> Router::attempt(ProxyJob& job, const ReplicaTable::Pick& pick) {
  struct Clear {
    ProxyJob& j;
    ~Clear() { j.upstream = nullptr; }
  } clear{job};
  ResponseRelay r;
  UpstreamExchange up;
  if (auto outcome = co_await send_request(job, pick, up)) co_return std::move(*outcome);
  begin_relay(job, pick.replica->addr().url, up.parser->get(), up.parser->chunked(), r);
  if (!co_await relay_body(job, up, r)) co_return Attempt{true};
  co_return conclude(job, *pick.replica, up, r);
}

// Sends the request and reads the response's header, on a kept-alive connection from the pool
// when there is one; when the replica closed that meanwhile (the write or the read fails at
// once), once more on a fresh connection. nullopt: `up` holds the response's header; otherwise
// the attempt's outcome (the client left, or the attempt failed).
net::awaitable<std::optional<Router::Attempt>> Router::send_request(ProxyJob& job,
                                                                    const ReplicaTable::Pick& pick,
                                                                    UpstreamExchange& up) {
  Replica& rep = *pick.replica;
  http::request<http::string_body> req = upstream_request(job, rep.addr());
  const beast::error_code& ec = up.ec;
  up.stream = pool_.take(rep.id());
  server::SendOptions o;
  o.arm_connect = [this](beast::tcp_stream& s) {
    s.expires_after(from_seconds(config_.connect_timeout_s));
  };
  o.arm = [this](beast::tcp_stream& s) { arm_timeout(s); };
  o.cancelled = [&job] { return job.client_gone; };
  o.on_stream = [&job](beast::tcp_stream& s) { job.upstream = &s; };
  switch (co_await server::send_request(up, pick.endpoints, req, o)) {
    case server::SendResult::kCancelled:
      co_return Attempt{true};
    case server::SendResult::kConnectFailed:
      mark_failed(rep, "connect: " + ec.message());
      co_return failed("connect");
    case server::SendResult::kFailed:
    case server::SendResult::kSent:
      break;
  }
  if (ec) {
    if (is_reset(ec)) mark_failed(rep, "no response: " + ec.message());
    co_return failed(ec == beast::error::timeout ? "timeout" : "no_response");
  }
  co_return std::nullopt;
}

// Reads the body and passes it on (pass_on) until it ends or fails (`up.ec`). False when the
// client left.
net::awaitable<bool> Router::relay_body(ProxyJob& job, UpstreamExchange& up, ResponseRelay& r) {
  auto& p = *up.parser;
  beast::error_code& ec = up.ec;
  char chunk[16384];
  while (!p.is_done()) {
    p.get().body().data = chunk;
    p.get().body().size = sizeof(chunk);
    arm_timeout(*up.stream);
    co_await http::async_read_some(*up.stream, up.buf, p,
                                   net::redirect_error(net::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (job.client_gone) co_return false;
    const size_t n = sizeof(chunk) - p.get().body().size;
    if (n > 0 && r.first_byte_s < 0) r.first_byte_s = seconds(Clock::now() - r.start);
    if (r.tap && n > 0) {
      std::string tapped = r.tap->feed(std::string_view(chunk, n));
      if (p.is_done()) tapped += r.tap->flush();
      pass_on(job, r, tapped, ec);
    } else {
      pass_on(job, r, std::string_view(chunk, n), ec);
    }
    if (ec) break;
    // A client that reads slower than the replica writes: wait rather than buffer without bound.
    while (r.committed && job.conn->pending_write_bytes() > (4u << 20) && !job.client_gone &&
           !job.conn->closed()) {
      net::steady_timer t(job.conn->executor());
      t.expires_after(std::chrono::milliseconds(2));
      beast::error_code ignored;
      co_await t.async_wait(net::redirect_error(net::use_awaitable, ignored));
    }
    if (job.client_gone || job.conn->closed()) co_return false;
  }
  co_return true;
}

// The end of an attempt whose body was read (or failed): metrics and usage; a cut before the
// client saw anything fails the attempt; a clean end gives the connection back to the pool; a
// retryable answer (502, 503, 504, 429 queue_full) fails the attempt with that answer kept;
// anything else is the client's answer.
Router::Attempt Router::conclude(ProxyJob& job, Replica& rep, UpstreamExchange& up,
                                 ResponseRelay& r) {
  const std::string& url = rep.addr().url;
  const beast::error_code ec = up.ec;
  metrics_.record_upstream(url, r.first_byte_s, seconds(Clock::now() - r.start));
  if (job.count_usage && r.status == 200) {
    const int64_t t = r.tap ? r.tap->total() : usage_total(r.held);
    if (t > 0) job.usage_tokens = t;
  }
  if (ec) {
    if (!r.committed) {
      if (is_reset(ec)) mark_failed(rep, "response cut: " + ec.message());
      return failed(ec == beast::error::timeout ? "timeout" : "stream");
    }
    end_cut_stream(job, rep, ec);
    return Attempt{true};
  }
  job.conn->on_peer_gone(nullptr);
  // The response ended cleanly: the connection can carry the next request to this replica.
  auto& p = *up.parser;
  if (p.is_done() && p.get().keep_alive() && up.buf.size() == 0) {
    job.upstream = nullptr;
    pool_.put(rep.id(), std::move(up.stream));
  }
  if (r.committed) {
    finish(job, url, r.status);
    job.conn->end_stream();
    return Attempt{true};
  }
  const bool queue_full = r.status == 429 && r.held.find("queue_full") != std::string::npos;
  if (r.status == 502 || r.status == 503 || r.status == 504 || queue_full) {
    if (r.status == 503) mark_failed(rep, "answered 503");
    Attempt a = failed("status_" + std::to_string(r.status));
    a.status = r.status;
    a.body = std::move(r.held);
    a.headers = std::move(r.headers);
    return a;
  }
  finish(job, url, r.status);
  if (r.chunked && r.status == 200) {
    // A stream that held only its preamble: pass it on as it is.
    job.conn->begin_stream(http::status(r.status), std::move(r.headers));
    job.conn->write_chunk(std::move(r.held));
    job.conn->end_stream();
  } else {
    server::Response res{http::status(r.status), 11};
    for (const auto& [k, v] : r.headers) res.set(k, v);
    res.body() = std::move(r.held);
    job.conn->respond(std::move(res));
  }
  return Attempt{true};
}

// Too late to retry: the client already has part of the stream. It ends with an error event.
void Router::end_cut_stream(ProxyJob& job, Replica& rep, const beast::error_code& ec) {
  const std::string& url = rep.addr().url;
  LOG_WARN("router: replica {} failed mid-stream: {}", url, ec.message());
  if (is_reset(ec)) mark_failed(rep, "stream cut: " + ec.message());
  const ApiError e(
      502, fmt::format("The replica serving this request failed mid-stream ({}).", ec.message()),
      "server_error", std::nullopt, "upstream_error");
  finish(job, url, 502);
  job.conn->write_chunk("data: " + e.body() + "\n\n");
  job.conn->write_chunk("data: [DONE]\n\n");
  job.conn->end_stream();
  job.conn->on_peer_gone(nullptr);
}

}  // namespace inferd::router
