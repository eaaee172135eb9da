// GenerationJob: one generating request from submission to its last byte (see generation_job.h).
#include "server/generation_job.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/logging.h"
#include "server/responses.h"

namespace inferd::server {

using Clock = GenerationJob::Clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

GenerationJob::GenerationJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex,
                             CompletionRequest req, std::unique_ptr<Renderer> renderer)
    : EngineJob(server, std::move(conn), std::move(ex), req.prompts.size()),
      req_(std::move(req)),
      out_{req_, gen_, ex_.request_id, unix_now(), {}, {}},
      renderer_(std::move(renderer)),
      sub_times_(req_.prompts.size()) {
  const size_t n = size_t(req_.params.n);
  out_.prompts.resize(req_.prompts.size());
  for (size_t k = 0; k < req_.prompts.size(); ++k) {
    out_.prompts[k].token_ids = req_.prompts[k];
    out_.prompts[k].num_tokens = int32_t(req_.prompts[k].size());
  }
  out_.choices.resize(req_.prompts.size() * n);
  parsers_.resize(out_.choices.size());
  for (size_t i = 0; i < out_.choices.size(); ++i) {
    out_.choices[i].prompt_index = i / n;
    if (req_.chat && req_.output.active()) {
      parsers_[i].emplace(req_.output);
      out_.choices[i].parsed = &*parsers_[i];
    }
  }
}

// ---- submitting, failing, finishing -----------------------------------------------------------

void GenerationJob::started() {
  if (req_.stream) begin_stream();
}

// One engine request per prompt; an engine error on any aborts those already submitted and
// becomes the ApiError the client gets.
void GenerationJob::submit_all() {
  for (size_t k = 0; k < req_.prompts.size(); ++k) {
    GenerateRequest gr;
    gr.prompt_token_ids = req_.prompts[k];
    gr.params = req_.params;
    gr.priority = req_.priority;
    gr.lora_adapter_id = req_.lora_adapter_id;
    gr.images = req_.image_inputs;  // chat: one prompt
    submit(k, std::move(gr));
  }
}

// A constraint that does not compile names the field it came from; other refusals name none
// (the server validated the body before submitting).
ApiError GenerationJob::invalid_request(const InvalidRequestError& e, size_t) const {
  std::optional<std::string> param;
  if (dynamic_cast<const InvalidConstraintError*>(&e) && !req_.constraint_param.empty())
    param = req_.constraint_param;
  return ApiError(400, e.what(), "invalid_request_error", param);
}

void GenerationJob::on_output(RequestOutput&& out, Clock::time_point t) {
  if (done_) return;
  const size_t k = sub_of(out.request_id);
  if (k == subs_.size() || subs_[k].finished) return;
  SubTimes& sub = sub_times_[k];
  PromptOutput& prompt = out_.prompts[k];
  if (out.num_prompt_tokens > 0) prompt.num_tokens = out.num_prompt_tokens;
  prompt.cached_tokens = std::max(prompt.cached_tokens, out.num_cached_tokens);
  for (auto& lp : out.prompt_logprobs) prompt.prompt_logprobs.push_back(std::move(lp));
  if (!out.error.empty() && !failure_) {
    fail_with(out.unavailable
                  ? ApiError(503, "The model is not available: " + out.error + ".",
                             "service_unavailable_error", std::nullopt, "model_sleeping")
                  : ApiError(500, "The engine failed the request: " + out.error, "server_error"));
  }
  if (out.finished) sub.times = out.times;
  if (std::any_of(out.outputs.begin(), out.outputs.end(),
                  [](const SequenceDelta& d) { return !d.token_ids.empty(); })) {
    if (sub.last_token != Clock::time_point{})
      server_.metrics_.record_inter_token(seconds(t - sub.last_token));
    sub.last_token = t;
  }
  for (auto& d : out.outputs) {
    const size_t ci = k * size_t(req_.params.n) + size_t(d.index);
    if (ci >= out_.choices.size()) continue;
    if (!d.token_ids.empty()) {
      if (first_token_ == Clock::time_point{}) first_token_ = t;
      last_token_ = t;
    }
    on_delta(ci, d);
  }
  if (out.finished) {
    subs_[k].finished = true;
    if (all_finished()) complete();
  }
}

// One choice's news: gathered into the choice; in a live stream, parsed and rendered.
void GenerationJob::on_delta(size_t ci, SequenceDelta& d) {
  ChoiceOutput& c = out_.choices[ci];
  c.token_ids.insert(c.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
  c.text += d.text;
  if (req_.logprobs) c.logprobs.insert(c.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
  if (d.finish_reason) {
    c.finish = *d.finish_reason;
    if (d.stop_string)
      c.stop_reason = *d.stop_string;
    else if (d.stop_token_id)
      c.stop_reason = *d.stop_token_id;
  }
  if (!streamed_ || client_gone_ || failure_) return;
  ChoiceDelta cd;
  cd.index = ci;
  cd.text = d.text;
  cd.token_ids = d.token_ids;
  if (req_.logprobs) cd.logprobs = d.logprobs;
  cd.finish = d.finish_reason;
  ChatDelta parsed;
  if (parsers_[ci]) {
    parsed = parsers_[ci]->feed(d.text);
    if (d.finish_reason) {
      ChatDelta f = parsers_[ci]->finish();
      parsed.reasoning += f.reasoning;
      parsed.content += f.content;
      for (auto& t : f.calls) parsed.calls.push_back(std::move(t));
    }
    cd.reasoning = parsed.reasoning;
    cd.content = parsed.content;
    cd.calls = parsed.calls;
  } else {
    cd.content = d.text;
  }
  renderer_->delta(out_, cd, *this);
}

void GenerationJob::complete() {
  if (!end_job() || client_gone_) return;
  if (failure_) {
    renderer_->fail(out_, *failure_, streamed_, *this);
  } else if (streamed_) {
    renderer_->end(out_, *this);
  } else {
    // A plain request's chat text goes through its parsers whole.
    for (auto& p : parsers_)
      if (p) {
        const size_t i = size_t(&p - parsers_.data());
        p->feed(out_.choices[i].text);
        p->finish();
      }
    renderer_->full(out_, *this);
  }
}

void GenerationJob::record(int status, Clock::time_point end) {
  RequestRecord r;
  const Usage usage = out_.usage();
  r.prompt_tokens = usage.prompt_tokens;
  const int64_t cached = usage.cached_tokens;
  for (const auto& c : out_.choices) {
    r.generation_tokens += c.num_tokens();
    r.finish_reasons.push_back(c.finish.value_or(FinishReason::kAbort));
  }
  const bool any_token = first_token_ != Clock::time_point{};
  if (any_token) r.ttft_s = seconds(first_token_ - ex_.start);
  const int64_t per_seq =
      out_.choices.empty() ? 0 : r.generation_tokens / int64_t(out_.choices.size());
  if (any_token && per_seq > 1)
    r.tpot_s = seconds(last_token_ - first_token_) / double(per_seq - 1);
  r.e2e_s = seconds(end - ex_.start);
  r.n = req_.params.n;
  r.max_tokens = req_.params.max_tokens;
  for (const auto& s : sub_times_) r.engine_times.push_back(s.times);
  server_.metrics_.record_request(r);
  if (server_.front_.limiter().enabled())
    server_.front_.limiter().charge(ex_.api_key, r.generation_tokens);
  std::string finish;
  for (const auto& c : out_.choices) {
    if (!finish.empty()) finish += ',';
    finish += to_string(c.finish.value_or(FinishReason::kAbort));
  }
  // No prompt text unless --log-prompts (then bounded and escaped: one line per request).
  std::string prompt;
  if (server_.config_.log_prompts)
    for (size_t i = 0; i < req_.prompt_texts.size(); ++i)
      prompt +=
          fmt::format(" prompt{}=\"{}\"", req_.prompt_texts.size() > 1 ? std::to_string(i) : "",
                      log_excerpt(req_.prompt_texts[i], server_.config_.log_prompt_max_bytes));
  LOG_INFO(
      "request id={} route={} status={} stream={} n={} prompt_tokens={} completion_tokens={} "
      "cached_tokens={} ttft_ms={} total_ms={:.1f} finish={}{}{}{}",
      ex_.request_id, ex_.route, status, req_.stream, out_.choices.size(), r.prompt_tokens,
      r.generation_tokens, cached, any_token ? fmt::format("{:.1f}", r.ttft_s * 1e3) : "-",
      r.e2e_s * 1e3, finish, req_.user.empty() ? "" : " user=", req_.user, prompt);
}

// ---- the stream and the sink ------------------------------------------------------------------

void GenerationJob::begin_stream() {
  Headers h = ex_.cors;
  h.emplace_back("Content-Type", "text/event-stream; charset=utf-8");
  h.emplace_back("Cache-Control", "no-cache");
  h.emplace_back("X-Request-Id", ex_.request_id);
  conn_->begin_stream(http::status::ok, std::move(h));
  server_.front_.record(ex_, 200);
  streamed_ = true;
  renderer_->begin(out_, *this);
}

void GenerationJob::event(std::string_view data, std::string_view name) {
  std::string e;
  e.reserve(data.size() + name.size() + 16);
  if (!name.empty()) {
    e += "event: ";
    e += name;
    e += '\n';
  }
  e += "data: ";
  e += data;
  e += "\n\n";
  conn_->write_chunk(std::move(e));
}

void GenerationJob::end_stream() {
  conn_->end_stream();
}

void GenerationJob::send_json(int status, std::string body) {
  server_.send_json(conn_, ex_, status, body);
}

void GenerationJob::send_error(const ApiError& e) {
  server_.send_error(conn_, ex_, e);
}

}  // namespace inferd::server
