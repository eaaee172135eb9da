// Router: construction, start, drain and stop; its own routes (/health, /ready, /metrics,
// /version, /v1/models) and the dispatch of everything else to proxy() (proxy.cc).
#include "router/router.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "server/api_error.h"
#include "server/api_keys.h"
#include "server/responses.h"

namespace inferd::router {

namespace net = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using server::ApiError;

Router::Router(RouterConfig config)
    : config_(std::move(config)),
      table_(config_.policy, config_.health),
      limiter_(config_.rate_limit_rpm, config_.rate_limit_tpm),
      http_(config_.http, *this) {
  if (config_.backends.empty() && config_.backend_file.empty() && config_.backend_dns.empty())
    fail("no replicas: pass --backend URL (repeatable), --backend-file FILE or --backend-dns URL");
  if (config_.max_retries < 0) fail("--max-retries must be >= 0, got {}", config_.max_retries);
  // Fail early on a bad URL.
  for (const auto& b : config_.backends) (void)parse_backend_url(b);
  for (const auto& b : config_.backend_dns) (void)parse_backend_url(b);
  health_ = std::make_unique<HealthChecker>(http_.io(), table_, config_.health_check);
}

Router::~Router() {
  stop();
}

void Router::start() {
  load_backends();
  apply_backends();
  http_.start();
  if (!config_.backend_file.empty() || !config_.backend_dns.empty())
    net::co_spawn(net::make_strand(http_.io()), discover(), net::detached);
  LOG_INFO("routing on http://{}:{} ({} replicas, policy {})", config_.http.host, http_.port(),
           table_.replicas().size(), to_string(config_.policy.policy));
}

void Router::stop() {
  if (stopped_.exchange(true)) return;
  draining_ = true;
  if (health_) health_->stop();
  http_.stop();
}

void Router::drain_and_stop() {
  if (stopped_) return;
  draining_ = true;
  http_.stop_accepting();
  LOG_INFO("draining: {} request(s) in flight, waiting up to {} s", active_.load(),
           config_.drain_timeout_s);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(config_.drain_timeout_s));
  while (active_ > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (active_ > 0) LOG_WARN("drain timeout: closing {} request(s)", active_.load());
  stop();
  LOG_INFO("drained; stopped");
}

server::Response Router::http_error(int status, const std::string& message, unsigned version) {
  server::Response res = server::http_layer_error(status, message, version);
  metrics_.record_http("-", "-", status);
  return res;
}

void Router::send(const std::shared_ptr<server::Connection>& conn, const Exchange& ex,
                  server::Response&& res) {
  for (const auto& [k, v] : ex.cors) res.set(k, v);
  metrics_.record_http(server::handler_label(ex.route), ex.method, res.result_int());
  conn->respond(std::move(res));
}

void Router::send_json(const std::shared_ptr<server::Connection>& conn, const Exchange& ex,
                       int status, const std::string& body) {
  send(conn, ex, server::json_response(status, body));
}

void Router::send_error(const std::shared_ptr<server::Connection>& conn, const Exchange& ex,
                        const ApiError& e) {
  send(conn, ex, server::error_response(e));
}

void Router::check_auth(const server::Request& req) const {
  server::check_bearer(req[http::field::authorization], config_.api_keys);
}

void Router::handle(const std::shared_ptr<server::Connection>& conn, server::Request&& req) {
  Exchange ex;
  ex.target = std::string(req.target());
  ex.route = ex.target.substr(0, ex.target.find('?'));
  ex.method = req.method() == http::verb::unknown ? "other" : std::string(req.method_string());
  // CORS, as the server answers it (--allowed-origins).
  const std::string origin(req[http::field::origin]);
  const bool origin_ok = server::cors_headers(origin, config_.allowed_origins, ex.cors);
  try {
    if (server::is_cors_preflight(req, origin))
      return send(conn, ex, server::cors_preflight(req, origin, origin_ok));
    route(conn, req, ex);
  } catch (const ApiError& e) {
    LOG_INFO("router request route={} status={} error=\"{}\"", ex.route, e.status(), e.what());
    send_error(conn, ex, e);
  } catch (const std::exception& e) {
    LOG_ERROR("router request route={} status=500 error=\"{}\"", ex.route, e.what());
    send_error(conn, ex,
               ApiError(500, std::string("Internal server error: ") + e.what(), "server_error"));
  }
}

void Router::route(const std::shared_ptr<server::Connection>& conn, server::Request& req,
                   Exchange& ex) {
  const std::string& path = ex.route;
  const bool is_get = req.method() == http::verb::get;
  const bool is_post = req.method() == http::verb::post;
  auto allow = [&](const char* methods) {
    send(conn, ex, server::method_not_allowed(ex.method, path, methods));
  };
  if (path == "/") {
    // The chat page of the replicas (`inferd serve` at /): from any ready one. It talks to this
    // router's /v1 routes, so it offers every model behind it.
    if (!is_get) return allow("GET");
    return proxy(conn, req, ex, ProxyKind::kPage);
  }
  if (path == "/health") {
    if (!is_get) return allow("GET");
    return send(conn, ex, server::Response{http::status::ok, 11});
  }
  if (path == "/ready") {
    if (!is_get) return allow("GET");
    if (draining_)
      throw ApiError(503, "The router is shutting down.", "service_unavailable_error", std::nullopt,
                     "not_ready");
    if (table_.num_healthy() == 0)
      throw ApiError(503, "No replica is ready.", "service_unavailable_error", std::nullopt,
                     "not_ready");
    return send_json(conn, ex, 200, R"({"status":"ready"})");
  }
  if (path == "/metrics") {
    if (!is_get) return allow("GET");
    server::Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = metrics_.render(table_.states(), table_.prefix_index_size());
    return send(conn, ex, std::move(res));
  }
  if (path == "/version") {
    if (!is_get) return allow("GET");
    return send_json(conn, ex, 200, R"({"version":"0.1.0"})");
  }
  if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) {
    check_auth(req);
    if (!is_get) return allow("GET");
    return serve_models(conn, ex);
  }
  if (path == "/v1/chat/completions" || path == "/v1/completions") {
    check_auth(req);
    if (!is_post) return allow("POST");
    return proxy(conn, req, ex, ProxyKind::kCompletion);
  }
  if (path == "/tokenize" || path == "/detokenize") {
    if (!is_post) return allow("POST");
    return proxy(conn, req, ex, ProxyKind::kModel);
  }
  if (path.rfind("/v1/", 0) == 0) check_auth(req);
  throw ApiError(404, fmt::format("Unknown route: {} {}", ex.method, path), "invalid_request_error",
                 std::nullopt, "not_found");
}

// /v1/models (the union of the healthy replicas' models) and /v1/models/{model}.
void Router::serve_models(const std::shared_ptr<server::Connection>& conn, const Exchange& ex) {
  const std::string& path = ex.route;
  const std::vector<std::string> models = table_.served_models();
  const int64_t now = server::unix_now();
  auto card = [&](const std::string& id) {
    return nlohmann::ordered_json{
        {"id", id}, {"object", "model"}, {"created", now}, {"owned_by", "inferd"}};
  };
  if (path == "/v1/models") {
    nlohmann::ordered_json data = nlohmann::ordered_json::array();
    for (const auto& m : models) data.push_back(card(m));
    return send_json(conn, ex, 200,
                     nlohmann::ordered_json{{"object", "list"}, {"data", std::move(data)}}.dump());
  }
  const std::string id = path.substr(std::string("/v1/models/").size());
  if (std::find(models.begin(), models.end(), id) == models.end())
    throw ApiError(404, fmt::format("The model `{}` does not exist.", id), "invalid_request_error",
                   "model", "model_not_found");
  send_json(conn, ex, 200, card(id).dump());
}

}  // namespace inferd::router
