// Router: construction, start, drain and stop; its route table (on the shared front, front.h):
// its own routes (/health, /ready, /metrics, /version, /v1/models) and the proxied ones
// (proxy.cc).
#include "router/router.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "server/api_error.h"
#include "server/responses.h"

namespace inferd::router {

namespace net = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using server::ApiError;

namespace {

server::FrontConfig front_config(const RouterConfig& c) {
  server::FrontConfig f;
  f.service = "router";
  f.log_tag = "router request";
  f.api_keys = c.api_keys;
  f.allowed_origins = c.allowed_origins;
  f.rate_limit_rpm = c.rate_limit_rpm;
  f.rate_limit_tpm = c.rate_limit_tpm;
  f.max_concurrent_per_key = c.max_concurrent_per_key;
  f.retry_after_s = c.retry_after_s;
  return f;
}

}  // namespace

Router::Router(RouterConfig config)
    : config_(std::move(config)),
      table_(config_.policy, config_.health),
      front_(front_config(config_),
             [this](const std::string& handler, const std::string& method, int status) {
               metrics_.record_http(handler, method, status);
             }),
      http_(config_.http, *this) {
  if (!config_.models && config_.backends.empty() && config_.backend_file.empty() &&
      config_.backend_dns.empty())
    fail("no replicas: pass --backend URL (repeatable), --backend-file FILE or --backend-dns URL");
  if (config_.max_retries < 0) fail("--max-retries must be >= 0, got {}", config_.max_retries);
  // Fail early on a bad URL.
  for (const auto& b : config_.backends) (void)parse_backend_url(b);
  for (const auto& b : config_.backend_dns) (void)parse_backend_url(b);
  health_ = std::make_unique<HealthChecker>(http_.io(), table_, config_.health_check);
  add_routes();
}

Router::~Router() {
  stop();
}

void Router::start() {
  load_backends();
  apply_backends();
  if (config_.models) {
    config_.models->set_on_change(
        [this](const std::map<std::string, std::string>& loaded) { set_model_replicas(loaded); });
    config_.models->start();
  }
  http_.start();
  if (!config_.backend_file.empty() || !config_.backend_dns.empty())
    net::co_spawn(net::make_strand(http_.io()), discover(), net::detached);
  LOG_INFO("routing on http://{}:{} ({} replicas, policy {})", config_.http.host, http_.port(),
           table_.replicas().size(), to_string(config_.policy.policy));
}

void Router::stop() {
  if (stopped_.exchange(true)) return;
  front_.set_draining();
  if (health_) health_->stop();
  http_.stop();
  // The children go last: no request is left to use them.
  if (config_.models) config_.models->stop();
}

void Router::drain_and_stop() {
  if (stopped_) return;
  front_.set_draining();
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
  return front_.http_error(status, message, version);
}

void Router::handle(const std::shared_ptr<server::Connection>& conn, server::Request&& req) {
  front_.handle(conn, req);
}

void Router::add_routes() {
  using server::Connection;
  using server::Request;
  using server::Route;
  using Conn = const std::shared_ptr<Connection>&;
  auto proxied = [this](ProxyKind kind) {
    return [this, kind](Conn c, Request& r, Exchange& ex) { proxy(c, r, ex, kind); };
  };
  auto own = [this](void (Router::*f)(Conn, const Exchange&)) {
    return [this, f](Conn c, Request&, Exchange& ex) { (this->*f)(c, ex); };
  };
  server::RouteTable& t = front_.routes();
  constexpr auto kGet = http::verb::get;
  constexpr auto kPost = http::verb::post;
  // The chat page of the replicas (`inferd serve` at /): from any ready one. It talks to this
  // router's /v1 routes, so it offers every model behind it.
  t.add(Route{"/", false, kGet, false, "", proxied(ProxyKind::kPage)});
  t.add(Route{"/health", false, kGet, false, "", [this](Conn c, Request&, Exchange& ex) {
                front_.send(c, ex, server::Response{http::status::ok, 11});
              }});
  t.add(Route{"/ready", false, kGet, false, "", own(&Router::serve_ready)});
  t.add(Route{"/metrics", false, kGet, false, "", own(&Router::serve_metrics)});
  t.add(Route{"/version", false, kGet, false, "", [this](Conn c, Request&, Exchange& ex) {
                front_.send_json(c, ex, 200, R"({"version":"0.1.0"})");
              }});
  t.add(Route{"/v1/models", false, kGet, true, "", own(&Router::serve_models)});
  t.add(Route{"/v1/models/", true, kGet, true, "/v1/models/{model}", own(&Router::serve_models)});
  t.add(Route{"/v1/chat/completions", false, kPost, true, "", proxied(ProxyKind::kCompletion)});
  t.add(Route{"/v1/completions", false, kPost, true, "", proxied(ProxyKind::kCompletion)});
  if (config_.models) {
    // `inferd serve` with several models: its other generating routes too.
    t.add(Route{"/v1/responses", false, kPost, true, "", proxied(ProxyKind::kCompletion)});
    t.add(Route{"/v1/messages", false, kPost, true, "", proxied(ProxyKind::kCompletion)});
    t.add(Route{"/v1/embeddings", false, kPost, true, "", proxied(ProxyKind::kCompletion)});
  }
  t.add(Route{"/tokenize", false, kPost, false, "", proxied(ProxyKind::kModel)});
  t.add(Route{"/detokenize", false, kPost, false, "", proxied(ProxyKind::kModel)});
}

void Router::serve_ready(const std::shared_ptr<server::Connection>& conn, const Exchange& ex) {
  if (front_.draining())
    throw ApiError(503, "The router is shutting down.", "service_unavailable_error", std::nullopt,
                   "not_ready");
  // Several models in one server: ready to take requests whether or not a model is loaded.
  if (config_.models) return front_.send_json(conn, ex, 200, R"({"status":"ready"})");
  // The replicas out of rotation and why (an API key missing, a connection refused, ...).
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  std::string why;
  for (const ReplicaState& s : table_.states()) {
    if (s.healthy) continue;
    out.push_back({{"replica", s.url}, {"reason", s.problem}, {"error", s.last_error}});
    why += fmt::format("{} {}: {}", why.empty() ? ":" : ";", s.url, s.last_error);
  }
  if (table_.num_healthy() == 0)
    throw ApiError(503, "No replica is ready" + why + ".", "service_unavailable_error",
                   std::nullopt, "not_ready");
  nlohmann::ordered_json body = {{"status", "ready"}};
  if (!out.empty()) body["replicas_out"] = std::move(out);
  front_.send_json(conn, ex, 200, body.dump());
}

void Router::serve_metrics(const std::shared_ptr<server::Connection>& conn, const Exchange& ex) {
  server::Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = metrics_.render(table_.states(), table_.prefix_index_size());
  if (config_.models) res.body() += config_.models->render_metrics();
  front_.send(conn, ex, std::move(res));
}

// /v1/models (the union of the healthy replicas' models) and /v1/models/{model}.
void Router::serve_models(const std::shared_ptr<server::Connection>& conn, const Exchange& ex) {
  if (config_.models) return serve_managed_models(conn, ex);
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
    return front_.send_json(
        conn, ex, 200,
        nlohmann::ordered_json{{"object", "list"}, {"data", std::move(data)}}.dump());
  }
  const std::string id = path.substr(std::string("/v1/models/").size());
  if (std::find(models.begin(), models.end(), id) == models.end())
    throw ApiError(404, fmt::format("The model `{}` does not exist.", id), "invalid_request_error",
                   "model", "model_not_found");
  front_.send_json(conn, ex, 200, card(id).dump());
}

}  // namespace inferd::router
