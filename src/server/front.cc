// The shared HTTP front (see front.h).
#include "server/front.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/logging.h"
#include "server/api_keys.h"
#include "server/responses.h"

namespace inferd::server {

std::string bearer_token(std::string_view authorization) {
  return authorization.size() > 7 ? std::string(authorization.substr(7)) : std::string();
}

Front::Front(FrontConfig config, RecordHttp record)
    : config_(std::move(config)),
      record_(std::move(record)),
      limiter_(config_.rate_limit_rpm, config_.rate_limit_tpm),
      concurrency_(config_.max_concurrent_per_key) {}

void Front::handle(const std::shared_ptr<Connection>& conn, Request& req) {
  Exchange ex;
  ex.target = std::string(req.target());
  ex.route = ex.target.substr(0, ex.target.find('?'));
  ex.method = req.method() == http::verb::unknown ? "other" : std::string(req.method_string());
  ex.api_key = bearer_token(req[http::field::authorization]);
  const std::string origin(req[http::field::origin]);
  const bool origin_ok = cors_headers(origin, config_.allowed_origins, ex.cors);
  try {
    if (is_cors_preflight(req, origin))
      return send(conn, ex, cors_preflight(req, origin, origin_ok));
    dispatch(conn, req, ex);
  } catch (const ApiError& e) {
    LOG_INFO("{} route={} status={} error=\"{}\"", config_.log_tag, ex.route, e.status(), e.what());
    send_error(conn, ex, e);
  } catch (const std::exception& e) {
    LOG_ERROR("{} route={} status=500 error=\"{}\"", config_.log_tag, ex.route, e.what());
    send_error(conn, ex,
               ApiError(500, std::string("Internal server error: ") + e.what(), "server_error"));
  }
}

// The route for the path and method: the API key first where the route needs it, then 405 when
// the path has routes but none for the method; no route is a 404 (after the key, under /v1/).
void Front::dispatch(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
  const std::vector<const Route*> routes = routes_.match(ex.route);
  if (routes.empty()) {
    if (ex.route.rfind("/v1/", 0) == 0) check_auth(req);
    throw ApiError(404, fmt::format("Unknown route: {} {}", ex.method, ex.route),
                   "invalid_request_error", std::nullopt, "not_found");
  }
  ex.label = routes.front()->label;
  if (std::any_of(routes.begin(), routes.end(), [](const Route* r) { return r->needs_key; }))
    check_auth(req);
  for (const Route* r : routes)
    if (r->method == req.method()) return r->handler(conn, req, ex);
  const std::string allowed = allowed_methods(routes);
  send(conn, ex, method_not_allowed(ex.method, ex.route, allowed.c_str()));
}

Response Front::http_error(int status, const std::string& message, unsigned version) {
  Response res = http_layer_error(status, message, version);
  record_("-", "-", status);
  LOG_INFO("{} route=- status={} error=\"{}\"", config_.log_tag, status, message);
  return res;
}

std::string Front::label(const Exchange& ex) const {
  return ex.label.empty() ? handler_label(ex.route) : ex.label;
}

void Front::send(const std::shared_ptr<Connection>& conn, const Exchange& ex, Response&& res) {
  for (const auto& [k, v] : ex.cors) res.set(k, v);
  record_(label(ex), ex.method, res.result_int());
  conn->respond(std::move(res));
}

void Front::send_json(const std::shared_ptr<Connection>& conn, const Exchange& ex, int status,
                      const std::string& body) {
  send(conn, ex, json_response(status, body));
}

void Front::send_error(const std::shared_ptr<Connection>& conn, const Exchange& ex,
                       const ApiError& e) {
  send(conn, ex, error_response(e));
}

void Front::record(const Exchange& ex, int status) {
  record_(label(ex), ex.method, status);
}

void Front::check_auth(const Request& req) const {
  check_bearer(req[http::field::authorization], config_.api_keys);
}

void Front::check_accepting() const {
  if (draining_)
    throw ApiError(503, fmt::format("The {} is shutting down.", config_.service),
                   "service_unavailable_error", std::nullopt, "server_shutdown")
        .with_retry_after(config_.retry_after_s);
}

void Front::admit(const std::string& api_key, int64_t tokens) {
  if (!limiter_.enabled()) return;
  const auto v = limiter_.admit(api_key, tokens);
  if (!v.allowed)
    throw ApiError(429,
                   fmt::format("Rate limit reached for {} per minute on this API key. Try "
                               "again in {:.1f} s.",
                               v.kind, v.retry_after_s),
                   v.kind, std::nullopt, "rate_limit_exceeded")
        .with_retry_after(std::max(1, int(std::ceil(v.retry_after_s))));
}

ConcurrencyLimiter::Slot Front::acquire_slot(const std::string& api_key) {
  bool refused = false;
  ConcurrencyLimiter::Slot slot = concurrency_.try_acquire(api_key, refused);
  if (refused)
    throw ApiError(429,
                   fmt::format("Too many concurrent requests on this API key: the limit is {} in "
                               "flight at once (--max-concurrent-requests-per-key). Retry when "
                               "one finishes.",
                               concurrency_.max_per_key()),
                   "rate_limit_error", std::nullopt, "concurrency_limit_exceeded")
        .with_retry_after(config_.retry_after_s);
  return slot;
}

}  // namespace inferd::server
