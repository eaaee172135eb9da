// EmbeddingJob: one /v1/embeddings request from admission to its answer (see embedding_job.h).
#include "server/embedding_job.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/logging.h"
#include "inferd/request_validation.h"
#include "server/responses.h"

namespace inferd::server {

using Clock = EmbeddingJob::Clock;

namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

ApiError embedding_model_error(const std::string& route) {
  return ApiError(400,
                  fmt::format("This server serves an embedding model (--task embed): use "
                              "/v1/embeddings. {} needs a server started with --task generate.",
                              route),
                  "invalid_request_error", std::nullopt, "model_not_generative");
}

// ---- admission --------------------------------------------------------------------------------

void EmbeddingJob::admit(Server& server, const std::shared_ptr<Connection>& conn, Request& req,
                         Exchange& ex) {
  if (server.generator_->task() != ModelTask::kEmbed)
    throw ApiError(400,
                   "This model does not serve embeddings: the server runs it for generation "
                   "(--task generate). Start the server with --task embed to use "
                   "/v1/embeddings.",
                   "invalid_request_error", std::nullopt, "model_not_embedding");
  server.check_accepting();
  const json body = parse_json_body(req.body());
  EmbeddingRequest er = parse_embedding_request(body, server.validation_context(req));
  int64_t tokens = 0;
  for (const auto& in : er.inputs) tokens += int64_t(in.size());
  server.front().admit(ex.api_key, tokens);
  ex.request_id = "embd-" + random_hex(24);
  const uint64_t job_id = server.next_job_.fetch_add(1);
  auto job = std::make_shared<EmbeddingJob>(server, conn, ex, std::move(er));
  server.add_job(job_id, job);
  try {
    job->start(job_id);
  } catch (...) {
    server.remove_job(job_id);
    throw;
  }
}

EmbeddingJob::EmbeddingJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex,
                           EmbeddingRequest req)
    : server_(server),
      gen_(*server.generator_),
      conn_(std::move(conn)),
      ex_(std::move(ex)),
      req_(std::move(req)),
      timer_(conn_->executor()) {
  created_ = unix_now();
  subs_.resize(req_.inputs.size());
}

// ---- submitting, failing, finishing -----------------------------------------------------------

// The body's field behind an engine validation error on input k: the pooling options by their
// names, anything else the input.
std::string EmbeddingJob::engine_param(const std::string& field, size_t k) const {
  if (field.find("dimensions") != std::string::npos) return "dimensions";
  if (field.find("normalize") != std::string::npos) return "normalize";
  return req_.inputs.size() == 1 ? "input" : fmt::format("input[{}]", k);
}

void EmbeddingJob::start(uint64_t job_id) {
  job_id_ = job_id;
  submit_all();
  conn_->on_peer_gone([self = shared_from_this()] { self->on_peer_gone(); });
  if (server_.config_.request_timeout_s > 0) start_timeout();
}

// One engine request per input, all submitted before any answer; an engine error on any aborts
// those already submitted and becomes the ApiError the client gets.
void EmbeddingJob::submit_all() {
  auto self = shared_from_this();
  auto strand = conn_->executor();
  for (size_t k = 0; k < req_.inputs.size(); ++k) {
    GenerateRequest gr;
    gr.request_id =
        req_.inputs.size() == 1 ? ex_.request_id : fmt::format("{}-{}", ex_.request_id, k);
    gr.prompt_token_ids = req_.inputs[k];
    gr.priority = req_.priority;
    gr.pooling = req_.pooling;
    subs_[k].engine_id = gr.request_id;
    subs_[k].prompt_tokens = int32_t(gr.prompt_token_ids.size());
    auto fail = [&](ApiError e) {
      done_ = true;
      abort_submitted();
      throw e;
    };
    try {
      gen_.submit(std::move(gr), [self, strand](RequestOutput&& out) {
        net::post(strand,
                  [self, out = std::move(out)]() mutable { self->on_output(std::move(out)); });
      });
      subs_[k].submitted = true;
    } catch (const QueueFullError& e) {
      fail(ApiError(429, fmt::format("The server is busy: {}. Retry later.", e.what()),
                    "rate_limit_error", std::nullopt, "queue_full")
               .with_retry_after(server_.config_.retry_after_s));
    } catch (const InvalidFieldError& e) {
      fail(ApiError(400, e.what(), "invalid_request_error", engine_param(e.param(), k)));
    } catch (const InvalidRequestError& e) {
      fail(ApiError(400, e.what(), "invalid_request_error", engine_param("", k)));
    } catch (const EngineStoppedError& e) {
      fail(ApiError(503, fmt::format("The engine is not running: {}", e.what()),
                    "service_unavailable_error", std::nullopt, "engine_stopped"));
    }
  }
}

// --request-timeout: a request still running then fails with 408.
void EmbeddingJob::start_timeout() {
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

void EmbeddingJob::abort_with(ApiError e) {
  net::post(conn_->executor(), [self = shared_from_this(), e = std::move(e)]() mutable {
    if (!self->done_) self->fail_with(std::move(e));
  });
}

void EmbeddingJob::abort_submitted() {
  for (auto& s : subs_)
    if (s.submitted && !s.finished) gen_.abort(s.engine_id);
}

void EmbeddingJob::on_peer_gone() {
  if (done_) return;
  client_gone_ = true;
  abort_submitted();
}

void EmbeddingJob::fail_with(ApiError e) {
  if (failure_) return;
  failure_ = std::move(e);
  abort_submitted();
}

void EmbeddingJob::on_output(RequestOutput&& out) {
  if (done_) return;
  size_t k = 0;
  while (k < subs_.size() && subs_[k].engine_id != out.request_id) ++k;
  if (k == subs_.size() || subs_[k].finished) return;
  Sub& sub = subs_[k];
  if (out.num_prompt_tokens > 0) sub.prompt_tokens = out.num_prompt_tokens;
  if (!out.error.empty() && !failure_)
    fail_with(ApiError(500, "The engine failed the request: " + out.error, "server_error"));
  if (!out.finished) return;
  sub.finished = true;
  sub.embedding = std::move(out.embedding);
  if (sub.embedding.empty() && !failure_ && !client_gone_)
    fail_with(
        ApiError(500, "The engine finished the request without an embedding.", "server_error"));
  if (std::all_of(subs_.begin(), subs_.end(), [](const Sub& s) { return s.finished; })) complete();
}

void EmbeddingJob::complete() {
  if (done_) return;
  done_ = true;
  timer_.cancel();
  int status = 200;
  if (client_gone_)
    status = 499;  // client closed the request (nginx's convention, for logs)
  else if (failure_)
    status = failure_->status();
  // Count the request before answering, so a client that reads /metrics next sees it.
  conn_->on_peer_gone(nullptr);
  record(status, Clock::now());
  server_.remove_job(job_id_);
  if (client_gone_) return;
  if (failure_)
    server_.send_error(conn_, ex_, *failure_);
  else
    send_result();
}

void EmbeddingJob::record(int status, Clock::time_point end) {
  RequestRecord r;
  for (const auto& s : subs_) {
    r.prompt_tokens += s.prompt_tokens;
    r.finish_reasons.push_back(status == 200 ? FinishReason::kStop : FinishReason::kAbort);
  }
  r.e2e_s = seconds(end - ex_.start);
  server_.metrics_.record_request(r);
  std::string prompt;
  if (server_.config_.log_prompts)
    for (size_t i = 0; i < req_.input_texts.size(); ++i)
      prompt += fmt::format(" input{}=\"{}\"", req_.input_texts.size() > 1 ? std::to_string(i) : "",
                            log_excerpt(req_.input_texts[i], server_.config_.log_prompt_max_bytes));
  const size_t dims = subs_.empty() ? 0 : subs_.front().embedding.size();
  LOG_INFO(
      "request id={} route={} status={} inputs={} prompt_tokens={} dimensions={} encoding={} "
      "total_ms={:.1f}{}{}{}",
      ex_.request_id, ex_.route, status, subs_.size(), r.prompt_tokens, dims,
      req_.base64 ? "base64" : "float", r.e2e_s * 1e3, req_.user.empty() ? "" : " user=", req_.user,
      prompt);
}

// {object: "list", data: [{object: "embedding", index, embedding}], model, usage}, plus vLLM's id
// and created.
void EmbeddingJob::send_result() {
  ojson data = ojson::array();
  int64_t prompt_tokens = 0;
  for (size_t i = 0; i < subs_.size(); ++i) {
    ojson d;
    d["object"] = "embedding";
    d["index"] = i;
    if (req_.base64)
      d["embedding"] = embedding_base64(subs_[i].embedding, req_.big_endian);
    else
      d["embedding"] = subs_[i].embedding;
    data.push_back(std::move(d));
    prompt_tokens += subs_[i].prompt_tokens;
  }
  ojson j;
  j["id"] = ex_.request_id;
  j["object"] = "list";
  j["created"] = created_;
  j["model"] = req_.model;
  j["data"] = std::move(data);
  j["usage"] = {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}};
  server_.send_json(conn_, ex_, 200, dump_json(j));
}

}  // namespace inferd::server
