// One /v1/embeddings request: its admission (the server's task, drain, the body, rate limits),
// then, on its connection's strand, one engine request per input submitted together, the pooled
// vectors gathered in input order and answered as one JSON list (floats or base64), the request
// timeout, aborts when the client leaves or the server drains, and the request's metrics and log
// line. Embeddings never stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "server/embedding_request.h"
#include "server/server.h"

namespace inferd::server {

// The 400 a generation route (`route`) answers on a server started with --task embed.
ApiError embedding_model_error(const std::string& route);

class EmbeddingJob : public ServerJob, public std::enable_shared_from_this<EmbeddingJob> {
 public:
  using Clock = std::chrono::steady_clock;

  // Admits a POST /v1/embeddings (authenticated already) and starts its job. Throws ApiError:
  // 400 when the server generates (--task generate) or for a bad body, 429 rate limit or queue
  // full, 503 draining or engine stopped.
  static void admit(Server& server, const std::shared_ptr<Connection>& conn, Request& req,
                    Exchange& ex);

  EmbeddingJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex, EmbeddingRequest req);

  // Submits every input to the engine. Throws ApiError when they could not all be submitted
  // (those that were are aborted).
  void start(uint64_t job_id);
  void abort_with(ApiError e) override;

 private:
  struct Sub {  // one input's engine request
    std::string engine_id;
    bool submitted = false;
    bool finished = false;
    int32_t prompt_tokens = 0;
    std::vector<float> embedding;
  };

  void submit_all();
  std::string engine_param(const std::string& field, size_t k) const;
  void start_timeout();
  void abort_submitted();
  void on_peer_gone();
  void fail_with(ApiError e);
  void on_output(RequestOutput&& out);
  void complete();
  void record(int status, Clock::time_point end);
  void send_result();

  Server& server_;
  Generator& gen_;
  std::shared_ptr<Connection> conn_;
  Exchange ex_;
  EmbeddingRequest req_;
  net::steady_timer timer_;
  uint64_t job_id_ = 0;
  int64_t created_ = 0;
  std::vector<Sub> subs_;
  bool client_gone_ = false;
  bool done_ = false;
  std::optional<ApiError> failure_;
};

}  // namespace inferd::server
