// EngineJob: what the generating and the embedding jobs share (see engine_job.h).
#include "server/engine_job.h"

#include <fmt/format.h>

#include <algorithm>

namespace inferd::server {

EngineJob::EngineJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex,
                     size_t num_requests)
    : server_(server),
      gen_(*server.generator_),
      conn_(std::move(conn)),
      ex_(std::move(ex)),
      timer_(conn_->executor()),
      subs_(num_requests) {}

void EngineJob::start(uint64_t job_id, ConcurrencyLimiter::Slot slot) {
  job_id_ = job_id;
  slot_ = std::move(slot);
  try {
    submit_all();
  } catch (...) {
    slot_.release();
    throw;
  }
  conn_->on_peer_gone([self = shared_from_this()] { self->on_peer_gone(); });
  if (server_.config_.request_timeout_s > 0) start_timeout();
  started();
}

void EngineJob::submit(size_t k, GenerateRequest gr) {
  gr.request_id = subs_.size() == 1 ? ex_.request_id : fmt::format("{}-{}", ex_.request_id, k);
  subs_[k].engine_id = gr.request_id;
  auto refuse = [&](ApiError e) {
    done_ = true;
    abort_submitted();
    throw e;
  };
  try {
    gen_.submit(std::move(gr),
                [self = shared_from_this(), strand = conn_->executor()](RequestOutput&& out) {
                  const auto t = Clock::now();
                  net::post(strand, [self, out = std::move(out), t]() mutable {
                    self->on_output(std::move(out), t);
                  });
                });
    subs_[k].submitted = true;
  } catch (const QueueFullError& e) {
    refuse(ApiError(429, fmt::format("The server is busy: {}. Retry later.", e.what()),
                    "rate_limit_error", std::nullopt, "queue_full")
               .with_retry_after(server_.config_.retry_after_s));
  } catch (const InvalidRequestError& e) {
    refuse(invalid_request(e, k));
  } catch (const EngineSleepingError& e) {
    refuse(ApiError(503, fmt::format("The model is not available: {}.", e.what()),
                    "service_unavailable_error", std::nullopt, "model_sleeping")
               .with_retry_after(server_.config_.retry_after_s));
  } catch (const EngineStoppedError& e) {
    refuse(ApiError(503, fmt::format("The engine is not running: {}", e.what()),
                    "service_unavailable_error", std::nullopt, "engine_stopped"));
  }
}

size_t EngineJob::sub_of(const std::string& engine_id) const {
  size_t k = 0;
  while (k < subs_.size() && subs_[k].engine_id != engine_id) ++k;
  return k;
}

bool EngineJob::all_finished() const {
  return std::all_of(subs_.begin(), subs_.end(), [](const EngineSub& s) { return s.finished; });
}

// --request-timeout: a request still running then fails with 408.
void EngineJob::start_timeout() {
  timer_.expires_after(std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(server_.config_.request_timeout_s)));
  timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->done_) return;
    self->fail_with(ApiError(408,
                             fmt::format("The request took longer than the server's limit "
                                         "of {} s (--request-timeout) and was aborted.",
                                         self->server_.config_.request_timeout_s),
                             "timeout_error", std::nullopt, "request_timeout"));
  });
}

void EngineJob::abort_with(ApiError e) {
  net::post(conn_->executor(), [self = shared_from_this(), e = std::move(e)]() mutable {
    if (!self->done_) self->fail_with(std::move(e));
  });
}

void EngineJob::abort_submitted() {
  for (auto& s : subs_)
    if (s.submitted && !s.finished) gen_.abort(s.engine_id);
}

void EngineJob::on_peer_gone() {
  if (done_) return;
  client_gone_ = true;
  abort_submitted();
}

void EngineJob::fail_with(ApiError e) {
  if (failure_) return;
  failure_ = std::move(e);
  abort_submitted();
}

bool EngineJob::end_job() {
  if (done_) return false;
  done_ = true;
  timer_.cancel();
  const auto end = Clock::now();
  int status = 200;
  if (client_gone_)
    status = 499;  // client closed the request (nginx's convention, for logs)
  else if (failure_)
    status = failure_->status();
  // Count the request before answering, so a client that reads /metrics next sees it.
  conn_->on_peer_gone(nullptr);
  record(status, end);
  slot_.release();
  server_.remove_job(job_id_);
  return true;
}

}  // namespace inferd::server
