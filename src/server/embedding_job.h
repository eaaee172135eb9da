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
#include "server/engine_job.h"
#include "server/server.h"

namespace inferd::server {

// The 400 a generation route (`route`) answers on a server started with --task embed.
ApiError embedding_model_error(const std::string& route);

class EmbeddingJob : public EngineJob {
 public:
  // Admits a POST /v1/embeddings (authenticated already) and starts its job. Throws ApiError:
  // 400 when the server generates (--task generate) or for a bad body, 429 rate limit or queue
  // full, 503 draining or engine stopped.
  static void admit(Server& server, const std::shared_ptr<Connection>& conn, Request& req,
                    Exchange& ex);

  EmbeddingJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex, EmbeddingRequest req);

 private:
  struct Input {  // one input's result
    int32_t prompt_tokens = 0;
    std::vector<float> embedding;
  };

  // EngineJob
  void submit_all() override;
  void on_output(RequestOutput&& out, Clock::time_point t) override;
  ApiError invalid_request(const InvalidRequestError& e, size_t k) const override;
  void record(int status, Clock::time_point end) override;

  std::string engine_param(const std::string& field, size_t k) const;
  void complete();
  void send_result();

  EmbeddingRequest req_;
  int64_t created_ = 0;
  std::vector<Input> inputs_;
};

}  // namespace inferd::server
