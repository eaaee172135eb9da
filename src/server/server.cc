// Server: start, drain and stop; dispatch through the route table; admission of a generating
// request (draining, rate limits) before it runs as a GenerationJob.
#include "server/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "server/api_error.h"
#include "server/embedding_job.h"
#include "server/generation_job.h"
#include "server/protocol.h"
#include "server/render/renderer.h"
#include "server/responses.h"
#include "server/routes/routes.h"

namespace inferd::server {

using Clock = std::chrono::steady_clock;

namespace {

FrontConfig front_config(const ServerConfig& c) {
  FrontConfig f;
  f.service = "server";
  f.log_tag = "request";
  f.api_keys = c.api_keys;
  f.allowed_origins = c.allowed_origins;
  f.rate_limit_rpm = c.rate_limit_rpm;
  f.rate_limit_tpm = c.rate_limit_tpm;
  f.max_concurrent_per_key = c.max_concurrent_per_key;
  f.retry_after_s = c.retry_after_s;
  return f;
}

}  // namespace

Server::Server(ServerConfig config, std::shared_ptr<Generator> generator)
    : config_(std::move(config)),
      generator_(std::move(generator)),
      metrics_(config_.served_model_names.empty() ? "" : config_.served_model_names.front(),
               generator_ ? generator_->max_model_len() : 1 << 20, config_.cache_config_info),
      responses_store_(config_.responses_store),
      front_(front_config(config_),
             [this](const std::string& handler, const std::string& method, int status) {
               metrics_.record_http(handler, method, status);
             }),
      http_(config_.http, *this) {
  INFERD_CHECK(generator_ != nullptr, "Server needs a generator");
  if (config_.served_model_names.empty()) config_.served_model_names.push_back("model");
  metrics_.set_lora(config_.lora);
  add_routes(front_.routes(), *this);
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
  front_.set_draining();
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
  front_.set_draining();
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
  return front_.http_error(status, message, version);
}

void Server::send(const std::shared_ptr<Connection>& conn, Exchange& ex, Response&& res) {
  front_.send(conn, ex, std::move(res));
}

void Server::send_json(const std::shared_ptr<Connection>& conn, Exchange& ex, int status,
                       const std::string& body) {
  front_.send_json(conn, ex, status, body);
}

void Server::send_error(const std::shared_ptr<Connection>& conn, Exchange& ex, const ApiError& e) {
  front_.send_error(conn, ex, e);
}

void Server::handle(const std::shared_ptr<Connection>& conn, Request&& req) {
  front_.handle(conn, req);
}

ValidationContext Server::validation_context(const Request& req) const {
  ValidationContext vc;
  vc.generator = generator_.get();
  vc.model_names = config_.served_model_names;
  vc.model_names.insert(vc.model_names.end(), config_.model_aliases.begin(),
                        config_.model_aliases.end());
  vc.lora = config_.lora.get();
  vc.limits = config_.request_limits;
  vc.parsing = config_.chat_parsing;
  vc.trust_request_chat_template = config_.trust_request_chat_template;
  vc.media = config_.media;
  vc.raw_body = req.body();
  return vc;
}

bool Server::serves_model(const std::string& name) const {
  auto has = [&](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), name) != v.end();
  };
  return has(config_.served_model_names) || has(config_.model_aliases) ||
         (config_.lora && config_.lora->id_of(name) >= 0);
}

void Server::start_generation(const std::shared_ptr<Connection>& conn, Exchange& ex,
                              CompletionRequest cr, std::unique_ptr<Renderer> renderer,
                              const std::string& id_prefix) {
  // Every generating route (completions, chat, messages, responses) on an embedding server.
  if (generator_->task() == ModelTask::kEmbed) throw embedding_model_error(ex.route);
  int64_t prompt_tokens = 0;
  for (const auto& p : cr.prompts) prompt_tokens += int64_t(p.size());
  ConcurrencyLimiter::Slot slot = front_.acquire_slot(ex.api_key);
  front_.admit(ex.api_key, prompt_tokens);
  // vLLM's request_id field (checked by the parser) names the answer; else a random id.
  ex.request_id = id_prefix + (cr.request_id.empty() ? random_hex(24) : cr.request_id);
  const uint64_t job_id = next_job_.fetch_add(1);
  auto job = std::make_shared<GenerationJob>(*this, conn, ex, std::move(cr), std::move(renderer));
  add_job(job_id, job);
  try {
    job->start(job_id, std::move(slot));
  } catch (...) {
    remove_job(job_id);
    throw;
  }
}

}  // namespace inferd::server
