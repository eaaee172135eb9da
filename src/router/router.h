// `inferd router`: an OpenAI-compatible front for many `inferd serve` replicas, on the server's
// HTTP stack. Requests go to a replica that serves their `model` (the routing policy picks which;
// see routing_policy.h); a request whose attempt fails before its first byte reached the client is
// retried on another replica; streams pass through chunk by chunk. Its own routes: /health,
// /ready (some replica is in rotation), /metrics, /version, /v1/models (the union of the
// replicas' models). API keys, the request body limit, per-key request rate limits, and errors
// in OpenAI's shape, as the server answers them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "router/health_checker.h"
#include "router/model_manager.h"
#include "router/replica_table.h"
#include "router/router_metrics.h"
#include "router/upstream_pool.h"
#include "server/api_error.h"
#include "server/front.h"
#include "server/http.h"

namespace inferd::router {

struct RouterConfig {
  server::HttpConfig http;
  std::vector<std::string> backends;  // replica URLs
  std::string backend_file;           // one URL a line, re-read when it changes
  // http://NAME:PORT whose every address is a replica (a Kubernetes headless Service), resolved
  // again at each discovery round.
  std::vector<std::string> backend_dns;
  std::chrono::milliseconds discovery_interval{2000};  // backend file and DNS
  PolicyConfig policy;
  HealthThresholds health;
  HealthCheckConfig health_check;
  std::vector<std::string> api_keys;              // empty: no auth
  std::vector<std::string> allowed_origins{"*"};  // CORS; empty: no CORS headers
  std::string backend_api_key;  // sent to replicas; empty: the client's Authorization
  int64_t rate_limit_rpm = 0;   // per API key; 0: off
  // Tokens (prompt + completion) per minute per API key, charged from the usage the replicas
  // report (streams get include_usage upstream; the usage event is passed on only when the
  // client asked for it); 0: off.
  int64_t rate_limit_tpm = 0;
  int64_t max_concurrent_per_key = 0;  // completions in flight per API key; 0: off
  int max_retries = 2;                 // further replicas tried after a failed attempt
  double connect_timeout_s = 5;
  double request_timeout_s = 600;  // an upstream exchange that stays silent this long fails
  double drain_timeout_s = 30;     // SIGTERM: how long in-flight requests may finish
  int retry_after_s = 1;           // Retry-After when no replica can take a request
  // Multi-model serving (`inferd serve --model A --model B`, model_manager.h): the replicas are
  // the manager's child processes, loaded on demand; /v1/models lists every configured model with
  // its state; requests may carry keep_alive. Null: a plain router over --backend replicas.
  std::shared_ptr<ModelManager> models;
};

struct ProxyJob;
struct UpstreamExchange;
struct ResponseRelay;

class Router final : public server::RequestHandler {
 public:
  // Throws Error for a bad backend URL or an unreadable backend file.
  explicit Router(RouterConfig config);
  ~Router() override;

  // Listens (throws Error when it cannot) and starts the health checks.
  void start();
  uint16_t port() const { return http_.port(); }
  // Stops accepting, lets in-flight requests finish for drain_timeout_s, then closes. Blocks.
  void drain_and_stop();
  void stop();

  ReplicaTable& table() { return table_; }
  RouterMetrics& metrics() { return metrics_; }
  server::ConcurrencyLimiter& concurrency() { return front_.concurrency(); }
  int64_t active_requests() const { return active_; }
  // Reads the backend file now (also done every discovery_interval when it changed).
  void reload_backend_file();

  void handle(const std::shared_ptr<server::Connection>& conn, server::Request&& req) override;
  server::Response http_error(int status, const std::string& message, unsigned version) override;

  using Exchange = server::Exchange;
  struct Attempt;  // how one attempt on a replica ended (proxy_job.h)

 private:
  friend struct ProxyJob;

  // ---- routes (router.cc) ----
  void add_routes();
  void serve_ready(const std::shared_ptr<server::Connection>& conn, const Exchange& ex);
  void serve_metrics(const std::shared_ptr<server::Connection>& conn, const Exchange& ex);
  void serve_models(const std::shared_ptr<server::Connection>& conn, const Exchange& ex);

  // ---- multi-model serving (managed_models.cc) ----
  // The manager's loaded children become the table's replicas.
  void set_model_replicas(const std::map<std::string, std::string>& loaded);
  // The configured model a request names (an alias gives its model's name), or the only one.
  // Throws ApiError 400 / 404.
  std::string managed_model(const nlohmann::json& body) const;
  // Waits (bounded by --model-load-timeout) until the job's model is loaded; the error to answer
  // when it does not get loaded.
  boost::asio::awaitable<std::optional<server::ApiError>> await_model(ProxyJob& job,
                                                                      ModelManager::Lease& lease);
  void serve_managed_models(const std::shared_ptr<server::Connection>& conn, const Exchange& ex);

  // ---- discovery (backend_discovery.cc) ----
  // --backend-file and --backend-dns as they are at start.
  void load_backends();
  boost::asio::awaitable<void> discover();
  // The table's replicas become --backend + the file's + the DNS names' addresses.
  void apply_backends();

  // ---- proxying (proxy.cc) ----
  // kCompletion: routed by model and prompt; kModel: by model (/tokenize); kPage: any replica.
  enum class ProxyKind { kCompletion, kModel, kPage };
  void proxy(const std::shared_ptr<server::Connection>& conn, server::Request& req, Exchange& ex,
             ProxyKind kind);
  // The model a request goes to: named, or the only one served ("" for a page). Throws ApiError.
  std::string route_model(ProxyKind kind, const nlohmann::json& body) const;
  // Rate limits of a completion; with tokens per minute on, has a stream report its usage.
  void admit(ProxyJob& job, const server::Request& req, nlohmann::json& body);
  boost::asio::awaitable<void> run(std::shared_ptr<ProxyJob> job);
  // The client has its answer from `replica` (or left: 499): metrics, and the request's log line.
  void finish(ProxyJob& job, const std::string& replica, int status);

  // ---- one attempt on one replica (upstream_attempt.cc) ----
  boost::asio::awaitable<Attempt> attempt(ProxyJob& job, const ReplicaTable::Pick& pick);
  boost::asio::awaitable<std::optional<Attempt>> send_request(ProxyJob& job,
                                                              const ReplicaTable::Pick& pick,
                                                              UpstreamExchange& up);
  boost::asio::awaitable<bool> relay_body(ProxyJob& job, UpstreamExchange& up, ResponseRelay& r);
  Attempt conclude(ProxyJob& job, Replica& rep, UpstreamExchange& up, ResponseRelay& r);
  void end_cut_stream(ProxyJob& job, Replica& rep, const boost::beast::error_code& ec);
  void mark_failed(Replica& rep, const std::string& why);
  // The request timeout on one upstream read or write.
  void arm_timeout(boost::beast::tcp_stream& s) const;

  RouterConfig config_;
  ReplicaTable table_;
  RouterMetrics metrics_;
  server::Front front_;  // routes, keys, CORS, rate limits, errors, draining
  std::atomic<int64_t> active_{0};
  std::atomic<bool> stopped_{false};
  // Discovery state (start(), then the discover() coroutine only).
  int64_t backend_file_mtime_ = -1;
  std::vector<std::string> file_urls_;
  std::map<std::string, std::vector<std::string>> dns_urls_;
  std::unique_ptr<HealthChecker> health_;
  // Its io_context, and the coroutines still on it, go before the members above.
  server::HttpServer http_;
  // After http_: its sockets close while their io_context still exists.
  UpstreamPool pool_;
};

}  // namespace inferd::router
