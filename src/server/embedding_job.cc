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
  ConcurrencyLimiter::Slot slot = server.front().acquire_slot(ex.api_key);
  server.front().admit(ex.api_key, tokens);
  ex.request_id = "embd-" + random_hex(24);
  const uint64_t job_id = server.next_job_.fetch_add(1);
  auto job = std::make_shared<EmbeddingJob>(server, conn, ex, std::move(er));
  server.add_job(job_id, job);
  try {
    job->start(job_id, std::move(slot));
  } catch (...) {
    server.remove_job(job_id);
    throw;
  }
}

EmbeddingJob::EmbeddingJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex,
                           EmbeddingRequest req)
    : EngineJob(server, std::move(conn), std::move(ex), req.inputs.size()),
      req_(std::move(req)),
      created_(unix_now()),
      inputs_(req_.inputs.size()) {}

// ---- submitting, failing, finishing -----------------------------------------------------------

// The body's field behind an engine validation error on input k: the pooling options by their
// names, anything else the input.
std::string EmbeddingJob::engine_param(const std::string& field, size_t k) const {
  if (field.find("dimensions") != std::string::npos) return "dimensions";
  if (field.find("normalize") != std::string::npos) return "normalize";
  return req_.inputs.size() == 1 ? "input" : fmt::format("input[{}]", k);
}

// One engine request per input, all submitted before any answer.
void EmbeddingJob::submit_all() {
  for (size_t k = 0; k < req_.inputs.size(); ++k) {
    GenerateRequest gr;
    gr.prompt_token_ids = req_.inputs[k];
    gr.priority = req_.priority;
    gr.pooling = req_.pooling;
    inputs_[k].prompt_tokens = int32_t(gr.prompt_token_ids.size());
    submit(k, std::move(gr));
  }
}

ApiError EmbeddingJob::invalid_request(const InvalidRequestError& e, size_t k) const {
  const auto* field = dynamic_cast<const InvalidFieldError*>(&e);
  return ApiError(400, e.what(), "invalid_request_error",
                  engine_param(field ? field->param() : std::string(), k));
}

void EmbeddingJob::on_output(RequestOutput&& out, Clock::time_point) {
  if (done_) return;
  const size_t k = sub_of(out.request_id);
  if (k == subs_.size() || subs_[k].finished) return;
  Input& sub = inputs_[k];
  if (out.num_prompt_tokens > 0) sub.prompt_tokens = out.num_prompt_tokens;
  if (!out.error.empty() && !failure_) {
    fail_with(out.unavailable
                  ? ApiError(503, "The model is not available: " + out.error + ".",
                             "service_unavailable_error", std::nullopt, "model_sleeping")
                  : ApiError(500, "The engine failed the request: " + out.error, "server_error"));
  }
  if (!out.finished) return;
  subs_[k].finished = true;
  sub.embedding = std::move(out.embedding);
  if (sub.embedding.empty() && !failure_ && !client_gone_)
    fail_with(
        ApiError(500, "The engine finished the request without an embedding.", "server_error"));
  if (all_finished()) complete();
}

void EmbeddingJob::complete() {
  if (!end_job() || client_gone_) return;
  if (failure_)
    server_.send_error(conn_, ex_, *failure_);
  else
    send_result();
}

void EmbeddingJob::record(int status, Clock::time_point end) {
  RequestRecord r;
  for (const auto& s : inputs_) {
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
  const size_t dims = inputs_.empty() ? 0 : inputs_.front().embedding.size();
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
  for (size_t i = 0; i < inputs_.size(); ++i) {
    ojson d;
    d["object"] = "embedding";
    d["index"] = i;
    if (req_.base64)
      d["embedding"] = embedding_base64(inputs_[i].embedding, req_.big_endian);
    else
      d["embedding"] = inputs_[i].embedding;
    data.push_back(std::move(d));
    prompt_tokens += inputs_[i].prompt_tokens;
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
