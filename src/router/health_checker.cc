#include "router/health_checker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>

#include "core/logging.h"

namespace inferd::router {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// The health checks of one replica share a kept-alive connection.
struct HealthSession {
  server::ClientExchange x;
  std::vector<tcp::endpoint> endpoints;  // x.stream goes to one of these
};

namespace {

struct GetResult {
  int status = 0;  // 0: no answer (error and reason say why)
  std::string body;
  std::string error;
  std::string reason;  // health_reason
};

// The bytes a TLS server sends first (a record: alert 0x15 or handshake 0x16, version 3.x).
bool looks_like_tls(const beast::flat_buffer& buf) {
  if (buf.size() < 2) return false;
  const auto* p = static_cast<const unsigned char*>(buf.data().data());
  return (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03;
}

// Why an exchange that got no HTTP answer failed: the reason and its hint.
void classify_failure(const server::ClientExchange& x, bool connect, GetResult& out) {
  const beast::error_code& ec = x.ec;
  if (ec == beast::error::timeout) {
    out.reason = health_reason::kTimeout;
    out.error += " (no answer within --health-check-timeout)";
  } else if (connect && ec == net::error::connection_refused) {
    out.reason = health_reason::kConnectRefused;
    out.error += " (nothing listens there: is the replica running, on this port?)";
  } else if (!connect && looks_like_tls(x.buf)) {
    out.reason = health_reason::kTls;
    out.error +=
        " (the replica answered in TLS: it serves https, and the router speaks plain "
        "http to replicas; put a TLS-terminating proxy in between or serve the replica "
        "over http on a private network)";
  } else if (!connect && server::is_stale_connection(ec)) {
    out.reason = health_reason::kConnection;
    out.error +=
        " (closed without an HTTP answer: is it an http:// inferd serve? a replica "
        "serving https closes so)";
  } else {
    out.reason = health_reason::kConnection;
  }
}

// One GET, bounded by `timeout` from the request on (and its connect by another); on the session's
// connection when it is still open (once more on a fresh one when the replica closed it meanwhile:
// server::send_request).
net::awaitable<GetResult> http_get(HealthSession& session, const std::vector<tcp::endpoint>& eps,
                                   const BackendAddress& a, const std::string& path,
                                   std::chrono::milliseconds timeout, const std::string& api_key) {
  GetResult out;
  server::ClientExchange& x = session.x;
  if (x.stream && session.endpoints != eps) x.stream.reset();
  session.endpoints = eps;
  http::request<http::string_body> req{http::verb::get, a.path + path, 11};
  req.set(http::field::host, a.host_header());
  req.set(http::field::user_agent, "inferd-router");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  req.keep_alive(true);
  server::SendOptions o;
  o.arm_connect = o.arm = [timeout](beast::tcp_stream& s) { s.expires_after(timeout); };
  const server::SendResult sent = co_await server::send_request(x, eps, req, o);
  if (sent == server::SendResult::kConnectFailed) {
    x.stream.reset();
    out.error = "connect: " + x.ec.message();
    classify_failure(x, true, out);
    co_return out;
  }
  if (sent != server::SendResult::kSent || !co_await server::read_body(x, out.body, 8u << 20)) {
    x.stream.reset();
    out.body.clear();
    out.error = "GET " + path + ": " + x.ec.message();
    classify_failure(x, false, out);
    co_return out;
  }
  out.status = int(x.parser->get().result_int());
  if (!x.parser->get().keep_alive()) x.stream.reset();
  co_return out;
}

}  // namespace

// vLLM's names (inferd serve's, and vLLM's own replicas'); before issue 30 inferd served them as
// inferd:*, still read so that a router upgraded before its replicas sees their load. A page
// with both counts vLLM's.
LoadMetrics parse_load_metrics(const std::string& page) {
  LoadMetrics m, legacy;
  size_t pos = 0;
  while (pos < page.size()) {
    size_t eol = page.find('\n', pos);
    if (eol == std::string::npos) eol = page.size();
    std::string_view line(page.data() + pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, name_end);
    std::optional<double>* field = nullptr;
    if (name == "vllm:num_requests_running") field = &m.running;
    if (name == "vllm:num_requests_waiting") field = &m.waiting;
    if (name == "vllm:kv_cache_usage_perc") field = &m.kv_usage;
    if (name == "inferd:num_requests_running") field = &legacy.running;
    if (name == "inferd:num_requests_waiting") field = &legacy.waiting;
    if (name == "inferd:kv_cache_usage_perc") field = &legacy.kv_usage;
    if (!field) continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos) continue;
    const std::string value(line.substr(sp + 1));
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    *field = field->value_or(0.0) + v;
  }
  if (!m.running) m.running = legacy.running;
  if (!m.waiting) m.waiting = legacy.waiting;
  if (!m.kv_usage) m.kv_usage = legacy.kv_usage;
  return m;
}

std::optional<std::vector<std::string>> parse_model_list(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& m : j["data"])
    if (m.is_object() && m.contains("id") && m["id"].is_string())
      out.push_back(m["id"].get<std::string>());
  return out;
}

HealthChecker::HealthChecker(net::io_context& io, ReplicaTable& table, HealthCheckConfig config)
    : io_(io), table_(table), config_(std::move(config)) {}

void HealthChecker::watch(std::shared_ptr<Replica> replica) {
  net::co_spawn(net::make_strand(io_), loop(std::move(replica)), net::detached);
}

namespace {

// The report of a GET that did not answer 200: why, with what to do about it.
void answered(HealthReport& h, const GetResult& g, const std::string& path,
              const std::string& api_key, const char* other_reason) {
  if (g.status == 0) {
    h.error = g.error;
    h.reason = g.reason;
    return;
  }
  h.error = "GET " + path + " answered " + std::to_string(g.status);
  if (g.status == 401 || g.status == 403) {
    h.reason = health_reason::kUnauthorized;
    h.error += api_key.empty()
                   ? " (the replica requires an API key: start the router with "
                     "--backend-api-key KEY, the replicas' --api-key)"
                   : " (the replica refused the router's --backend-api-key: give it one of "
                     "the replicas' --api-key keys)";
    return;
  }
  h.reason = other_reason;
  if (g.status == 200) h.error += " without a model list";
}

}  // namespace

net::awaitable<HealthReport> HealthChecker::check(const Replica& r, HealthSession& session) {
  HealthReport h;
  const BackendAddress& a = r.addr();
  tcp::resolver resolver(co_await net::this_coro::executor);
  beast::error_code ec;
  auto results = co_await resolver.async_resolve(a.host, std::to_string(a.port),
                                                 net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    h.error = "cannot resolve '" + a.host + "': " + ec.message();
    h.reason = health_reason::kResolve;
    co_return h;
  }
  for (const auto& e : results) h.endpoints.push_back(e.endpoint());
  GetResult ready = co_await http_get(session, h.endpoints, a, "/ready", config_.timeout, "");
  if (ready.status != 200) {
    answered(h, ready, "/ready", "", health_reason::kNotReady);
    co_return h;
  }
  GetResult models =
      co_await http_get(session, h.endpoints, a, "/v1/models", config_.timeout, config_.api_key);
  if (models.status == 200) h.models = parse_model_list(models.body);
  if (!h.models) {
    answered(h, models, "/v1/models", config_.api_key, health_reason::kBadResponse);
    co_return h;
  }
  GetResult metrics = co_await http_get(session, h.endpoints, a, "/metrics", config_.timeout, "");
  if (metrics.status == 200) {
    const LoadMetrics m = parse_load_metrics(metrics.body);
    h.running = m.running;
    h.waiting = m.waiting;
    h.kv_usage = m.kv_usage;
  }
  h.ready = true;
  co_return h;
}

net::awaitable<void> HealthChecker::loop(std::shared_ptr<Replica> replica) {
  net::steady_timer timer(co_await net::this_coro::executor);
  HealthSession session;
  while (!stopped_ && !table_.removed(*replica)) {
    const HealthReport h = co_await check(*replica, session);
    if (stopped_ || table_.removed(*replica)) break;
    table_.apply(*replica, h);
    timer.expires_after(config_.interval);
    beast::error_code ec;
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

}  // namespace inferd::router
