// Server: start, drain and stop; the routes and their answers; admission of a completions
// request (validation, rate limits) before it runs as a CompletionJob.
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
#include "server/completion_job.h"
#include "server/embedding_job.h"
#include "server/protocol.h"
#include "server/responses.h"
#include "server/ui_page.h"

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
      http_(config_.http, *this) {
  INFERD_CHECK(generator_ != nullptr, "Server needs a generator");
  if (config_.served_model_names.empty()) config_.served_model_names.push_back("model");
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

void Server::add_job(uint64_t id, const std::shared_ptr<ServerJob>& job) {
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
    std::vector<std::shared_ptr<ServerJob>> live;
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
  metrics_.record_http(handler_label(ex.route), ex.method, res.result_int());
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
  // CORS
  const std::string origin(req[http::field::origin]);
  const bool origin_ok = cors_headers(origin, config_.allowed_origins, ex.cors);
  try {
    if (is_cors_preflight(req, origin))
      return send(conn, ex, cors_preflight(req, origin, origin_ok));
    route(conn, req, ex);
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

void Server::route(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
  const std::string& path = ex.route;
  auto allow = [&](const char* methods) {
    send(conn, ex, method_not_allowed(ex.method, path, methods));
  };
  const bool is_get = req.method() == http::verb::get;
  const bool is_post = req.method() == http::verb::post;

  if (path == "/" && config_.ui) {
    if (!is_get) return allow("GET");
    return serve_chat_page(conn, ex);
  }
  if (path == "/health") {
    if (!is_get) return allow("GET");
    Response res{http::status::ok, 11};
    return send(conn, ex, std::move(res));
  }
  if (path == "/ready") {
    if (!is_get) return allow("GET");
    if (!ready_ || draining_)
      throw ApiError(503, draining_ ? "The server is shutting down." : "The server is warming up.",
                     "service_unavailable_error", std::nullopt, "not_ready");
    return send_json(conn, ex, 200, R"({"status":"ready"})");
  }
  if (path == "/metrics") {
    if (!is_get) return allow("GET");
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = metrics_.render(generator_->stats());
    return send(conn, ex, std::move(res));
  }
  if (path == "/version") {
    if (!is_get) return allow("GET");
    return send_json(conn, ex, 200, R"({"version":"0.1.0"})");
  }
  if (path == "/tokenize" || path == "/detokenize") {
    if (!is_post) return allow("POST");
    const json body = parse_json_body(req.body());
    if (auto mname = get_string(body, "model");
        mname && std::find(config_.served_model_names.begin(), config_.served_model_names.end(),
                           *mname) == config_.served_model_names.end())
      throw ApiError(404, fmt::format("The model `{}` does not exist.", *mname),
                     "invalid_request_error", "model", "model_not_found");
    const ojson out = path == "/tokenize" ? tokenize_body(body, *generator_, config_.request_limits)
                                          : detokenize_body(body, *generator_);
    return send_json(conn, ex, 200, dump_json(out));
  }
  if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) {
    check_auth(req);
    if (!is_get) return allow("GET");
    return serve_models(conn, ex);
  }
  if (path == "/v1/chat/completions" || path == "/v1/completions") {
    check_auth(req);
    if (!is_post) return allow("POST");
    return handle_completion(conn, req, ex, path == "/v1/chat/completions");
  }
  if (path == "/v1/embeddings") {
    check_auth(req);
    if (!is_post) return allow("POST");
    return EmbeddingJob::admit(*this, conn, req, ex);
  }
  if (path.rfind("/v1/", 0) == 0) check_auth(req);
  throw ApiError(404, fmt::format("Unknown route: {} {}", ex.method, path), "invalid_request_error",
                 std::nullopt, "not_found");
}

// The chat page (ui/chat.html, compiled in).
void Server::serve_chat_page(const std::shared_ptr<Connection>& conn, Exchange& ex) {
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/html; charset=utf-8");
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  // The page is self-contained: nothing may load from elsewhere.
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
          "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'");
  res.body() = std::string(chat_page());
  send(conn, ex, std::move(res));
}

// /v1/models (every served name) and /v1/models/{model}.
void Server::serve_models(const std::shared_ptr<Connection>& conn, Exchange& ex) {
  const std::string& path = ex.route;
  auto card = [&](const std::string& name) {
    ojson c;
    c["id"] = name;
    c["object"] = "model";
    c["created"] = unix_now();
    c["owned_by"] = "inferd";
    c["root"] = config_.model_root.empty() ? name : config_.model_root;
    c["parent"] = nullptr;
    c["max_model_len"] = generator_->max_model_len();
    return c;
  };
  if (path == "/v1/models") {
    ojson data = ojson::array();
    for (const auto& n : config_.served_model_names) data.push_back(card(n));
    return send_json(conn, ex, 200,
                     dump_json(ojson{{"object", "list"}, {"data", std::move(data)}}));
  }
  const std::string name = path.substr(std::string("/v1/models/").size());
  if (std::find(config_.served_model_names.begin(), config_.served_model_names.end(), name) ==
      config_.served_model_names.end())
    throw ApiError(404, fmt::format("The model `{}` does not exist.", name),
                   "invalid_request_error", "model", "model_not_found");
  send_json(conn, ex, 200, dump_json(card(name)));
}

void Server::handle_completion(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex,
                               bool chat) {
  if (generator_->task() == ModelTask::kEmbed) throw embedding_model_error(ex.route);
  if (draining_)
    throw ApiError(503, "The server is shutting down.", "service_unavailable_error", std::nullopt,
                   "server_shutdown")
        .with_retry_after(config_.retry_after_s);
  const std::string_view auth = req[http::field::authorization];
  ex.api_key = auth.size() > 7 ? std::string(auth.substr(7)) : std::string();
  const json body = parse_json_body(req.body());
  ValidationContext vc;
  vc.generator = generator_.get();
  vc.model_names = config_.served_model_names;
  vc.limits = config_.request_limits;
  vc.parsing = config_.chat_parsing;
  vc.raw_body = req.body();
  CompletionRequest cr = parse_completion_request(body, chat, vc);
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
  ex.request_id = (chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
  const uint64_t job_id = next_job_.fetch_add(1);
  auto job = std::make_shared<CompletionJob>(*this, conn, ex, std::move(cr));
  add_job(job_id, job);
  try {
    job->start(job_id);
  } catch (...) {
    remove_job(job_id);
    throw;
  }
}

}  // namespace inferd::server
