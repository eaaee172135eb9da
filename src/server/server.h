// The OpenAI-compatible server: routes, auth, CORS, admission (rate limits, queue), /tokenize,
// /detokenize, /v1/models, /health, /ready, /metrics, drain, and the chat page at /. A completions
// request, once admitted, runs as a CompletionJob (completion_job.h); an embeddings request as an
// EmbeddingJob (embedding_job.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/api_error.h"
#include "server/generator.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "server/rate_limiter.h"

namespace inferd::server {

struct ServerConfig {
  HttpConfig http;
  std::vector<std::string> served_model_names;    // the first is the default and the metrics label
  std::string model_root;                         // shown as "root" in /v1/models
  std::vector<std::string> api_keys;              // empty: no auth
  std::vector<std::string> allowed_origins{"*"};  // CORS; empty: no CORS headers
  int64_t rate_limit_rpm = 0;                     // per API key; 0: off
  int64_t rate_limit_tpm = 0;
  double request_timeout_s = 0;  // 0: none
  int retry_after_s = 1;         // Retry-After when the queue is full
  double drain_timeout_s = 30;   // SIGTERM: how long in-flight requests may finish
  bool ui = true;                // the chat page at / (server/ui_page.h); off: / answers 404
  RequestLimits request_limits;  // sizes of stop, logit_bias, tools, schemas, messages
  ChatParsing chat_parsing;      // tool-call and reasoning parsers (--tool-call-parser, ...)
  // Request log lines hold no prompt text unless this is on (--log-prompts); then each holds the
  // prompt's first log_prompt_max_bytes bytes, escaped.
  bool log_prompts = false;
  size_t log_prompt_max_bytes = 512;
};

// A request in flight (completions, embeddings): drain aborts those still running.
class ServerJob {
 public:
  virtual ~ServerJob() = default;
  // Aborts the request; its client gets `e`. Any thread.
  virtual void abort_with(ApiError e) = 0;
};

class CompletionJob;
class EmbeddingJob;

// Lifetime: requests in flight post their engine outputs to the server's io threads, so shut the
// generator down (Generator::shutdown) before destroying a Server that may still have some.
class Server final : public RequestHandler {
 public:
  Server(ServerConfig config, std::shared_ptr<Generator> generator);
  ~Server() override;

  // Listens (throws Error when it cannot) and serves; /ready answers 503 until set_ready(true).
  void start();
  void set_ready(bool ready) { ready_ = ready; }
  uint16_t port() const { return http_.port(); }

  // Graceful stop: stops accepting, lets in-flight requests finish for drain_timeout_s, then
  // aborts the rest (their clients get a 503 error), closes every connection. Blocks.
  void drain_and_stop();
  // Stops at once.
  void stop();

  size_t active_requests() const;
  const ServerConfig& config() const { return config_; }
  Generator& generator() { return *generator_; }
  Metrics& metrics() { return metrics_; }

  // RequestHandler
  void handle(const std::shared_ptr<Connection>& conn, Request&& req) override;
  Response http_error(int status, const std::string& message, unsigned version) override;

 private:
  friend class CompletionJob;
  friend class EmbeddingJob;
  // Per-request context: route, method, request id, API key, start, CORS headers.
  struct Exchange {
    std::string route;
    std::string method;
    std::string request_id;
    std::string api_key;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::vector<std::pair<std::string, std::string>> cors;
  };

  void route(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex);
  void serve_chat_page(const std::shared_ptr<Connection>& conn, Exchange& ex);
  void serve_models(const std::shared_ptr<Connection>& conn, Exchange& ex);
  void handle_completion(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex,
                         bool chat);
  void send(const std::shared_ptr<Connection>& conn, Exchange& ex, Response&& res);
  void send_json(const std::shared_ptr<Connection>& conn, Exchange& ex, int status,
                 const std::string& body);
  void send_error(const std::shared_ptr<Connection>& conn, Exchange& ex, const class ApiError& e);
  void check_auth(const Request& req) const;

  void add_job(uint64_t id, const std::shared_ptr<ServerJob>& job);
  void remove_job(uint64_t id);

  ServerConfig config_;
  std::shared_ptr<Generator> generator_;
  Metrics metrics_;
  RateLimiter limiter_;
  HttpServer http_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_job_{1};
  mutable std::mutex jobs_mu_;
  std::unordered_map<uint64_t, std::weak_ptr<ServerJob>> jobs_;
  bool stopped_ = false;
};

}  // namespace inferd::server
