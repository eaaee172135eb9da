// The OpenAI-compatible server: start, drain and stop; dispatch through the route table (auth,
// CORS, 404 / 405, errors); admission of generating requests (draining, rate limits) and the jobs
// in flight. The routes themselves live in routes/ (one file per route family, see routes.h); an
// admitted generating request runs as a GenerationJob (generation_job.h).
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

#include "server/front.h"
#include "server/generator.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "server/responses_store.h"

namespace inferd::server {

struct ServerConfig {
  HttpConfig http;
  std::vector<std::string> served_model_names;  // the first is the default and the metrics label
  // Further names a request's `model` may use that /v1/models does not list (the demo model's
  // "default"): one model, one entry.
  std::vector<std::string> model_aliases;
  std::string model_root;                         // shown as "root" in /v1/models
  std::vector<std::string> api_keys;              // empty: no auth
  std::vector<std::string> allowed_origins{"*"};  // CORS; empty: no CORS headers
  int64_t rate_limit_rpm = 0;                     // per API key; 0: off
  int64_t rate_limit_tpm = 0;
  int64_t max_concurrent_per_key = 0;  // requests in flight per API key; 0: off
  double request_timeout_s = 0;        // 0: none
  int retry_after_s = 1;               // Retry-After when the queue is full
  double drain_timeout_s = 30;         // SIGTERM: how long in-flight requests may finish
  bool ui = true;                      // the chat page at / (server/ui_page.h); off: / answers 404
  RequestLimits request_limits;        // sizes of stop, logit_bias, tools, schemas, messages
  ChatParsing chat_parsing;            // tool-call and reasoning parsers (--tool-call-parser, ...)
  bool trust_request_chat_template = false;  // --trust-request-chat-template
  MediaLimits media;  // images in requests: fetch rules and limits (--allowed-media-domains, ...)
  // Request log lines hold no prompt text unless this is on (--log-prompts); then each holds the
  // prompt's first log_prompt_max_bytes bytes, escaped.
  bool log_prompts = false;
  size_t log_prompt_max_bytes = 512;
  // The labels of vllm:cache_config_info on /metrics (block_size, num_gpu_blocks, ...); empty:
  // that gauge is not served.
  std::vector<std::pair<std::string, std::string>> cache_config_info;
  // --enable-sleep-mode: POST /sleep, POST /wake_up and GET /is_sleeping work (404 otherwise).
  bool enable_sleep_mode = false;
  // /v1/responses' store (store: true, previous_response_id): bounds of the in-memory LRU.
  ResponsesStoreConfig responses_store;
  // LoRA adapters (--enable-lora; issue 29): a request's model may name one, /v1/models lists
  // them; null: none. --enable-runtime-lora-updating: /v1/load_lora_adapter and
  // /v1/unload_lora_adapter change them while serving.
  std::shared_ptr<LoraAdapters> lora;
  bool enable_runtime_lora_updating = false;
};

class GenerationJob;
class Renderer;
class EmbeddingJob;

// A request in flight (generating, embeddings): drain aborts those still running.
class ServerJob {
 public:
  virtual ~ServerJob() = default;
  // Aborts the request; its client gets `e`. Any thread.
  virtual void abort_with(ApiError e) = 0;
};

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

  // ---- for route handlers (routes/*.cc) ----
  bool ready() const { return ready_; }
  bool draining() const { return front_.draining(); }
  Front& front() { return front_; }
  void send(const std::shared_ptr<Connection>& conn, Exchange& ex, Response&& res);
  void send_json(const std::shared_ptr<Connection>& conn, Exchange& ex, int status,
                 const std::string& body);
  void send_error(const std::shared_ptr<Connection>& conn, Exchange& ex, const class ApiError& e);
  // Throws 503 while the server drains (a generating request is refused before it is parsed).
  void check_accepting() const { front_.check_accepting(); }
  // How request bodies are validated here (models, limits, parsers); `req`'s body is kept.
  ValidationContext validation_context(const Request& req) const;
  // A request's `model` names this server's model (a served name or an alias).
  bool serves_model(const std::string& name) const;
  // Admits a parsed generating request (rate limits: 429) and runs it as a GenerationJob whose
  // answer `renderer` writes; ex.request_id becomes `id_prefix` and random hex. Throws ApiError
  // when it cannot start.
  void start_generation(const std::shared_ptr<Connection>& conn, Exchange& ex,
                        CompletionRequest req, std::unique_ptr<Renderer> renderer,
                        const std::string& id_prefix);
  // /v1/responses' stored responses (routes/responses.cc).
  ResponsesStore& responses_store() { return responses_store_; }

 private:
  friend class EngineJob;
  friend class GenerationJob;
  friend class EmbeddingJob;

  void add_job(uint64_t id, const std::shared_ptr<ServerJob>& job);
  void remove_job(uint64_t id);

  ServerConfig config_;
  std::shared_ptr<Generator> generator_;
  Metrics metrics_;
  ResponsesStore responses_store_;
  Front front_;
  HttpServer http_;
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> next_job_{1};
  mutable std::mutex jobs_mu_;
  std::unordered_map<uint64_t, std::weak_ptr<ServerJob>> jobs_;
  bool stopped_ = false;
};

}  // namespace inferd::server
