// The HTTP front `inferd serve` and `inferd router` share: per request an Exchange (route, target,
// method, API key, CORS headers), CORS preflights, the route table (the API key where a route
// needs it, 404 for no route, 405 with Allow), per-key rate limits (429 with Retry-After), errors
// in OpenAI's JSON shape with one log line each, and every answer counted for /metrics by its
// route's label. Each service owns one, fills its route table and hands it every request.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "server/http.h"
#include "server/rate_limiter.h"
#include "server/route_table.h"

namespace inferd::server {

struct FrontConfig {
  std::string service = "server";                 // "server", "router": in messages
  std::string log_tag = "request";                // a log line's first word(s)
  std::vector<std::string> api_keys;              // empty: no auth
  std::vector<std::string> allowed_origins{"*"};  // CORS; empty: no CORS headers
  int64_t rate_limit_rpm = 0;                     // per API key; 0: off
  int64_t rate_limit_tpm = 0;
  int64_t max_concurrent_per_key = 0;  // requests in flight per API key; 0: off
  int retry_after_s = 1;               // Retry-After of a 503 while draining or a 429 (in flight)
};

class Front {
 public:
  // Counts one answer: handler label, method, status.
  using RecordHttp =
      std::function<void(const std::string& handler, const std::string& method, int status)>;

  Front(FrontConfig config, RecordHttp record);

  RouteTable& routes() { return routes_; }
  RateLimiter& limiter() { return limiter_; }
  const FrontConfig& config() const { return config_; }

  // RequestHandler::handle's body: the exchange, CORS, the route, and the error answer when the
  // route throws.
  void handle(const std::shared_ptr<Connection>& conn, Request& req);
  // RequestHandler::http_error's body (bad HTTP, body too large), counted and logged.
  Response http_error(int status, const std::string& message, unsigned version);

  // Answers with the exchange's CORS headers, counted.
  void send(const std::shared_ptr<Connection>& conn, const Exchange& ex, Response&& res);
  void send_json(const std::shared_ptr<Connection>& conn, const Exchange& ex, int status,
                 const std::string& body);
  void send_error(const std::shared_ptr<Connection>& conn, const Exchange& ex, const ApiError& e);
  // Counts a streamed answer (its headers went out through Connection::begin_stream).
  void record(const Exchange& ex, int status);

  // 401 unless the request's bearer token is one of the keys (none: everything passes).
  void check_auth(const Request& req) const;
  // 503 (server_shutdown, Retry-After) once draining.
  void check_accepting() const;
  void set_draining() { draining_ = true; }
  bool draining() const { return draining_; }
  // Per-key rate limits: admits a request bringing `tokens`, else throws 429 (Retry-After).
  void admit(const std::string& api_key, int64_t tokens);
  // Per-key concurrency: a slot for one more request of `api_key` (hold it until the request
  // ends), else throws 429 (Retry-After). An empty slot when the limit is off.
  ConcurrencyLimiter::Slot acquire_slot(const std::string& api_key);
  ConcurrencyLimiter& concurrency() { return concurrency_; }

 private:
  void dispatch(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex);
  std::string label(const Exchange& ex) const;

  FrontConfig config_;
  RecordHttp record_;
  RouteTable routes_;
  RateLimiter limiter_;
  ConcurrencyLimiter concurrency_;
  std::atomic<bool> draining_{false};
};

// The bearer token of an Authorization header value ("" when none).
std::string bearer_token(std::string_view authorization);

}  // namespace inferd::server
