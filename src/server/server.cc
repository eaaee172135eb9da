// Server: start, drain and stop; dispatch through the route table; admission of a generating
// request (draining, rate limits) before it runs as a GenerationJob.
#include "server/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "server/api_error.h"
#include "server/api_keys.h"
#include "server/generation_job.h"
#include "server/protocol.h"
#include "server/render/renderer.h"
#include "server/responses.h"
#include "server/routes/routes.h"

namespace inferd::server {

using Clock = std::chrono::steady_clock;

namespace {

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   uint64_t(Clock::now().time_since_epoch().count())};
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = kHex[rng() & 15];
  return s;
}

}  // namespace

Server::Server(ServerConfig config, std::shared_ptr<Generator> generator)
    : config_(std::move(config)),
      generator_(std::move(generator)),
      metrics_(config_.served_model_names.empty() ? "" : config_.served_model_names.front()),
      limiter_(config_.rate_limit_rpm, config_.rate_limit_tpm),
      responses_store_(config_.responses_store),
      http_(config_.http, *this) {
  INFERD_CHECK(generator_ != nullptr, "Server needs a generator");
  if (config_.served_model_names.empty()) config_.served_model_names.push_back("model");
  add_routes(routes_, config_);
}

Server::~Server() {
  stop();
}

void Server::start() {
  http_.start();
  LOG_INFO("serving {} on http://{}:{}", config_.served_model_names.front(), config_.http.host,
           http_.port());
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  draining_ = true;
  ready_ = false;
  http_.stop();
}

size_t Server::active_requests() const {
  std::lock_guard lk(jobs_mu_);
  return jobs_.size();
}

void Server::add_job(uint64_t id, const std::shared_ptr<GenerationJob>& job) {
  std::lock_guard lk(jobs_mu_);
  jobs_[id] = job;
}

void Server::remove_job(uint64_t id) {
  std::lock_guard lk(jobs_mu_);
  jobs_.erase(id);
}

void Server::drain_and_stop() {
  if (stopped_) return;
  draining_ = true;
  ready_ = false;
  http_.stop_accepting();
  LOG_INFO("draining: {} request(s) in flight, waiting up to {} s", active_requests(),
           config_.drain_timeout_s);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(config_.drain_timeout_s));
  while (active_requests() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (active_requests() > 0) {
    std::vector<std::shared_ptr<GenerationJob>> live;
    {
      std::lock_guard lk(jobs_mu_);
      for (auto& [id, w] : jobs_)
        if (auto j = w.lock()) live.push_back(j);
    }
    LOG_WARN("drain timeout: aborting {} request(s)", live.size());
    for (auto& j : live)
      j->abort_with(ApiError(503, "The server is shutting down; the request was aborted.",
                             "service_unavailable_error", std::nullopt, "server_shutdown"));
    const auto d2 = Clock::now() + std::chrono::seconds(5);
    while (active_requests() > 0 && Clock::now() < d2)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Let the last responses reach their clients.
  const auto d3 = Clock::now() + std::chrono::seconds(2);
  while (http_.num_connections() > 0 && Clock::now() < d3)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop();
  LOG_INFO("drained; stopped");
}

Response Server::http_error(int status, const std::string& message, unsigned version) {
  Response res = http_layer_error(status, message, version);
  metrics_.record_http("-", "-", status);
  LOG_INFO("request route=- status={} error=\"{}\"", status, message);
  return res;
}

void Server::send(const std::shared_ptr<Connection>& conn, Exchange& ex, Response&& res) {
  for (const auto& [k, v] : ex.cors) res.set(k, v);
  metrics_.record_http(ex.label.empty() ? handler_label(ex.route) : ex.label, ex.method,
                       res.result_int());
  conn->respond(std::move(res));
}

void Server::send_json(const std::shared_ptr<Connection>& conn, Exchange& ex, int status,
                       const std::string& body) {
  send(conn, ex, json_response(status, body));
}

void Server::send_error(const std::shared_ptr<Connection>& conn, Exchange& ex, const ApiError& e) {
  send(conn, ex, error_response(e));
}

void Server::check_auth(const Request& req) const {
  check_bearer(req[http::field::authorization], config_.api_keys);
}

void Server::handle(const std::shared_ptr<Connection>& conn, Request&& req) {
  Exchange ex;
  std::string target(req.target());
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
  ex.route = target;
  ex.method = std::string(req.method_string());
  if (req.method() == http::verb::unknown) ex.method = "other";
  const std::string_view auth = req[http::field::authorization];
  ex.api_key = auth.size() > 7 ? std::string(auth.substr(7)) : std::string();
  // CORS
  const std::string origin(req[http::field::origin]);
  const bool origin_ok = cors_headers(origin, config_.allowed_origins, ex.cors);
  try {
    if (is_cors_preflight(req, origin))
      return send(conn, ex, cors_preflight(req, origin, origin_ok));
    dispatch(conn, req, ex);
  } catch (const ApiError& e) {
    if (ex.route.rfind("/v1/", 0) == 0 || e.status() >= 400)
      LOG_INFO("request route={} status={} error=\"{}\"", ex.route, e.status(), e.what());
    send_error(conn, ex, e);
  } catch (const std::exception& e) {
    LOG_ERROR("request route={} status=500 error=\"{}\"", ex.route, e.what());
    send_error(conn, ex,
               ApiError(500, std::string("Internal server error: ") + e.what(), "server_error"));
  }
}

// The route for the path and method: the API key first where the route needs it, then 405 when
// the path has routes but none for the method; no route is a 404 (after the key, under /v1/).
void Server::dispatch(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
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
    if (r->method == req.method()) return r->handler(*this, conn, req, ex);
  const std::string allowed = allowed_methods(routes);
  send(conn, ex, method_not_allowed(ex.method, ex.route, allowed.c_str()));
}

void Server::check_accepting() const {
  if (draining_)
    throw ApiError(503, "The server is shutting down.", "service_unavailable_error", std::nullopt,
                   "server_shutdown")
        .with_retry_after(config_.retry_after_s);
}

ValidationContext Server::validation_context(const Request& req) const {
  ValidationContext vc;
  vc.generator = generator_.get();
  vc.model_names = config_.served_model_names;
  vc.limits = config_.request_limits;
  vc.parsing = config_.chat_parsing;
  vc.raw_body = req.body();
  return vc;
}

void Server::start_generation(const std::shared_ptr<Connection>& conn, Exchange& ex,
                              CompletionRequest cr, std::unique_ptr<Renderer> renderer,
                              const std::string& id_prefix) {
  int64_t prompt_tokens = 0;
  for (const auto& p : cr.prompts) prompt_tokens += int64_t(p.size());
  if (limiter_.enabled()) {
    const auto v = limiter_.admit(ex.api_key, prompt_tokens);
    if (!v.allowed)
      throw ApiError(429,
                     fmt::format("Rate limit reached for {} per minute on this API key. Try "
                                 "again in {:.1f} s.",
                                 v.kind, v.retry_after_s),
                     v.kind, std::nullopt, "rate_limit_exceeded")
          .with_retry_after(std::max(1, int(std::ceil(v.retry_after_s))));
  }
  ex.request_id = id_prefix + random_hex(24);
  const uint64_t job_id = next_job_.fetch_add(1);
  auto job = std::make_shared<GenerationJob>(*this, conn, ex, std::move(cr), std::move(renderer));
  add_job(job_id, job);
  try {
    job->start(job_id);
  } catch (...) {
    remove_job(job_id);
    throw;
  }
}

}  // namespace inferd::server
