// What every request the server runs on the engine shares, generating (GenerationJob) or pooling
// (EmbeddingJob): one engine request per prompt or input, submitted together (the engine's
// refusals mapped to API errors, those already submitted aborted), the engine's outputs posted to
// the connection's strand, the request timeout (408), aborts when the client leaves or the server
// drains, and the bookkeeping of the end (status, metrics and log line through record(), the
// server's job list). A derived job says what each engine request is, what its outputs become and
// how the answer is written.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "server/server.h"

namespace inferd::server {

class EngineJob : public ServerJob, public std::enable_shared_from_this<EngineJob> {
 public:
  using Clock = std::chrono::steady_clock;

  // Submits the engine requests (submit_all), then watches the client and the timeout and calls
  // started(). Throws ApiError when they could not all be submitted (none then runs). `slot`
  // (the API key's place under --max-concurrent-requests-per-key) is held until the job ends.
  void start(uint64_t job_id, ConcurrencyLimiter::Slot slot = {});
  // Aborts the request; the client gets `e` (the derived job writes it). Any thread.
  void abort_with(ApiError e) override;

 protected:
  EngineJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex, size_t num_requests);

  // One engine request per prompt or input: submit(k, ...) for each k.
  virtual void submit_all() = 0;
  // After submission and the watches: a stream's header, for instance.
  virtual void started() {}
  // The engine's output (on the strand; `t`: when the engine delivered it).
  virtual void on_output(RequestOutput&& out, Clock::time_point t) = 0;
  // The API error of the engine refusing request k as invalid (400s naming the body's field).
  virtual ApiError invalid_request(const InvalidRequestError& e, size_t k) const = 0;
  // The request's metrics and log line with its final HTTP status.
  virtual void record(int status, Clock::time_point end) = 0;

  // Submits `gr` as engine request k; its id is the response id (with "-k" when there are
  // several). On a refusal: every request already submitted is aborted and the ApiError thrown.
  void submit(size_t k, GenerateRequest gr);
  // The engine request `engine_id` is, or subs_.size().
  size_t sub_of(const std::string& engine_id) const;
  bool all_finished() const;
  // The request failed: the client gets `e` at the end (the first failure wins).
  void fail_with(ApiError e);
  // Ends the job: the final status (499 client gone, the failure's, else 200), record(), off the
  // server's list. Returns false when already ended; the caller answers unless client_gone_.
  bool end_job();

  struct EngineSub {
    std::string engine_id;
    bool submitted = false;
    bool finished = false;
  };

  Server& server_;
  Generator& gen_;
  std::shared_ptr<Connection> conn_;
  Exchange ex_;
  net::steady_timer timer_;
  uint64_t job_id_ = 0;
  std::vector<EngineSub> subs_;
  bool client_gone_ = false;
  bool done_ = false;
  std::optional<ApiError> failure_;
  ConcurrencyLimiter::Slot slot_;

 private:
  void start_timeout();
  void abort_submitted();
  void on_peer_gone();
};

}  // namespace inferd::server
