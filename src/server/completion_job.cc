// CompletionJob: one completions request from submission to its last byte (see completion_job.h).
#include "server/completion_job.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/logging.h"
#include "server/responses.h"

namespace inferd::server {

using Clock = CompletionJob::Clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double clamp_logprob(float lp) {
  return std::isfinite(lp) ? double(lp) : -9999.0;
}

// The first max_bytes bytes of `s` (cut at a UTF-8 boundary) for a log line: quotes, backslashes
// and control characters escaped, "...(N bytes)" when cut.
std::string log_excerpt(const std::string& s, size_t max_bytes) {
  size_t n = std::min(s.size(), max_bytes);
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  if (n < s.size()) out += fmt::format("...({} bytes)", s.size());
  return out;
}

ojson utf8_bytes(const std::string& s) {
  ojson b = ojson::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

}  // namespace

CompletionJob::CompletionJob(Server& server, std::shared_ptr<Connection> conn, Server::Exchange ex,
                             CompletionRequest req, std::shared_ptr<ResponsesRenderer> responses)
    : server_(server),
      gen_(*server.generator_),
      conn_(std::move(conn)),
      ex_(std::move(ex)),
      req_(std::move(req)),
      responses_(std::move(responses)),
      timer_(conn_->executor()) {
  created_ = unix_now();
  const size_t n = size_t(req_.params.n);
  subs_.resize(req_.prompts.size());
  choices_.resize(req_.prompts.size() * n);
  if (req_.chat && req_.output.active() && !responses_)
    for (auto& c : choices_) c.parser.emplace(req_.output);
}

// ---- submitting, failing, finishing -----------------------------------------------------------

void CompletionJob::start(uint64_t job_id) {
  job_id_ = job_id;
  submit_all();
  conn_->on_peer_gone([self = shared_from_this()] { self->on_peer_gone(); });
  if (server_.config_.request_timeout_s > 0) start_timeout();
  if (req_.stream) begin_stream();
}

// One engine request per prompt; an engine error on any aborts those already submitted and
// becomes the ApiError the client gets.
void CompletionJob::submit_all() {
  auto self = shared_from_this();
  auto strand = conn_->executor();
  for (size_t k = 0; k < req_.prompts.size(); ++k) {
    GenerateRequest gr;
    gr.request_id =
        req_.prompts.size() == 1 ? ex_.request_id : fmt::format("{}-{}", ex_.request_id, k);
    gr.prompt_token_ids = req_.prompts[k];
    gr.params = req_.params;
    gr.priority = req_.priority;
    subs_[k].engine_id = gr.request_id;
    subs_[k].prompt_tokens = int32_t(gr.prompt_token_ids.size());
    try {
      gen_.submit(std::move(gr), [self, strand](RequestOutput&& out) {
        const auto t = Clock::now();
        net::post(strand, [self, out = std::move(out), t]() mutable {
          self->on_output(std::move(out), t);
        });
      });
      subs_[k].submitted = true;
    } catch (const QueueFullError& e) {
      done_ = true;
      abort_submitted();
      throw ApiError(429, fmt::format("The server is busy: {}. Retry later.", e.what()),
                     "rate_limit_error", std::nullopt, "queue_full")
          .with_retry_after(server_.config_.retry_after_s);
    } catch (const InvalidConstraintError& e) {
      done_ = true;
      abort_submitted();
      throw ApiError(400, e.what(), "invalid_request_error",
                     req_.constraint_param.empty()
                         ? std::nullopt
                         : std::optional<std::string>(req_.constraint_param));
    } catch (const InvalidRequestError& e) {
      done_ = true;
      abort_submitted();
      throw ApiError(400, e.what(), "invalid_request_error");
    } catch (const EngineStoppedError& e) {
      done_ = true;
      abort_submitted();
      throw ApiError(503, fmt::format("The engine is not running: {}", e.what()),
                     "service_unavailable_error", std::nullopt, "engine_stopped");
    }
  }
}

// --request-timeout: a request still running then fails with 408.
void CompletionJob::start_timeout() {
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

void CompletionJob::abort_with(ApiError e) {
  net::post(conn_->executor(), [self = shared_from_this(), e = std::move(e)]() mutable {
    if (!self->done_) self->fail_with(std::move(e));
  });
}

void CompletionJob::abort_submitted() {
  for (auto& s : subs_)
    if (s.submitted && !s.finished) gen_.abort(s.engine_id);
}

void CompletionJob::on_peer_gone() {
  if (done_) return;
  client_gone_ = true;
  abort_submitted();
}

void CompletionJob::fail_with(ApiError e) {
  if (failure_) return;
  failure_ = std::move(e);
  abort_submitted();
}

void CompletionJob::on_output(RequestOutput&& out, Clock::time_point t) {
  if (done_) return;
  size_t k = 0;
  while (k < subs_.size() && subs_[k].engine_id != out.request_id) ++k;
  if (k == subs_.size()) return;
  Sub& sub = subs_[k];
  if (sub.finished) return;
  if (out.num_prompt_tokens > 0) sub.prompt_tokens = out.num_prompt_tokens;
  sub.cached_tokens = std::max(sub.cached_tokens, out.num_cached_tokens);
  if (!out.error.empty() && !failure_)
    fail_with(ApiError(500, "The engine failed the request: " + out.error, "server_error"));
  for (auto& d : out.outputs) {
    const size_t ci = k * size_t(req_.params.n) + size_t(d.index);
    if (ci >= choices_.size()) continue;
    Choice& c = choices_[ci];
    if (!d.token_ids.empty()) {
      if (first_token_ == Clock::time_point{}) first_token_ = t;
      last_token_ = t;
      c.tokens += int32_t(d.token_ids.size());
    }
    if (d.finish_reason) {
      c.finish = *d.finish_reason;
      if (d.stop_string)
        c.stop_reason = *d.stop_string;
      else if (d.stop_token_id)
        c.stop_reason = *d.stop_token_id;
    }
    if (streamed_ && !client_gone_ && !failure_) {
      stream_delta(ci, c, d);
    } else if (!req_.stream) {
      c.text += d.text;
      if (req_.logprobs && !d.logprobs.empty()) {
        if (req_.chat) {
          if (c.logprobs.is_null()) c.logprobs = {{"content", ojson::array()}};
          for (auto& e : chat_logprobs(d.logprobs)) c.logprobs["content"].push_back(std::move(e));
        } else {
          completion_logprobs(d.logprobs, c, c.logprobs);
        }
      }
    }
  }
  if (out.finished) {
    sub.finished = true;
    if (std::all_of(subs_.begin(), subs_.end(), [](const Sub& s) { return s.finished; }))
      complete();
  }
}

void CompletionJob::complete() {
  if (done_) return;
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
  server_.remove_job(job_id_);
  if (client_gone_) return;
  if (failure_) {
    if (streamed_ && responses_) {
      conn_->write_chunk(responses_->fail(*failure_, responses_usage()));
      conn_->end_stream();
    } else if (streamed_) {
      conn_->write_chunk("data: " + failure_->body() + "\n\n");
      conn_->write_chunk("data: [DONE]\n\n");
      conn_->end_stream();
    } else {
      server_.send_error(conn_, ex_, *failure_);
    }
  } else if (streamed_ && responses_) {
    conn_->write_chunk(
        responses_->finish(choices_[0].finish.value_or(FinishReason::kAbort), responses_usage()));
    conn_->end_stream();
  } else if (streamed_) {
    if (req_.include_usage) {
      ojson j = chunk_base();
      j["choices"] = ojson::array();
      j["usage"] = usage_json();
      conn_->write_chunk("data: " + dump_json(j) + "\n\n");
    }
    conn_->write_chunk("data: [DONE]\n\n");
    conn_->end_stream();
  } else {
    send_full();
  }
}

void CompletionJob::record(int status, Clock::time_point end) {
  RequestRecord r;
  for (const auto& s : subs_) r.prompt_tokens += s.prompt_tokens;
  int64_t cached = 0;
  for (const auto& s : subs_) cached += s.cached_tokens;
  for (const auto& c : choices_) {
    r.generation_tokens += c.tokens;
    r.finish_reasons.push_back(c.finish.value_or(FinishReason::kAbort));
  }
  const bool any_token = first_token_ != Clock::time_point{};
  if (any_token) r.ttft_s = seconds(first_token_ - ex_.start);
  const int64_t per_seq = choices_.empty() ? 0 : r.generation_tokens / int64_t(choices_.size());
  if (any_token && per_seq > 1)
    r.tpot_s = seconds(last_token_ - first_token_) / double(per_seq - 1);
  r.e2e_s = seconds(end - ex_.start);
  server_.metrics_.record_request(r);
  if (server_.limiter_.enabled()) server_.limiter_.charge(ex_.api_key, r.generation_tokens);
  std::string finish;
  for (const auto& c : choices_) {
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
      ex_.request_id, ex_.route, status, req_.stream, choices_.size(), r.prompt_tokens,
      r.generation_tokens, cached, any_token ? fmt::format("{:.1f}", r.ttft_s * 1e3) : "-",
      r.e2e_s * 1e3, finish, req_.user.empty() ? "" : " user=", req_.user, prompt);
}

// ---- the answer's JSON ------------------------------------------------------------------------

// OpenAI's finish_reason: "tool_calls" when the model stopped after calling tools.
std::string CompletionJob::finish_reason(const Choice& c) const {
  const FinishReason f = c.finish.value_or(FinishReason::kAbort);
  if (f == FinishReason::kStop && c.parser && !c.parser->calls().empty()) return "tool_calls";
  return to_string(f);
}

std::string CompletionJob::object_name(bool chunk) const {
  if (req_.chat) return chunk ? "chat.completion.chunk" : "chat.completion";
  return "text_completion";
}

ojson CompletionJob::usage_json() const {
  int64_t prompt = 0, cached = 0, completion = 0;
  for (const auto& s : subs_) {
    prompt += s.prompt_tokens;
    cached += s.cached_tokens;
  }
  for (const auto& c : choices_) completion += c.tokens;
  ojson u;
  u["prompt_tokens"] = prompt;
  u["total_tokens"] = prompt + completion;
  u["completion_tokens"] = completion;
  ojson d;
  d["cached_tokens"] = cached;
  u["prompt_tokens_details"] = std::move(d);
  return u;
}

ResponsesUsage CompletionJob::responses_usage() const {
  ResponsesUsage u;
  for (const auto& s : subs_) {
    u.input_tokens += s.prompt_tokens;
    u.cached_tokens += s.cached_tokens;
  }
  for (const auto& c : choices_) u.output_tokens += c.tokens;
  return u;
}

ojson CompletionJob::chunk_base() const {
  ojson j;
  j["id"] = ex_.request_id;
  j["object"] = object_name(true);
  j["created"] = created_;
  j["model"] = req_.model;
  return j;
}

// Logprobs of the tokens of one delta, in the API's shape.
ojson CompletionJob::chat_logprobs(const std::vector<SampleLogprobs>& lps) const {
  ojson content = ojson::array();
  for (const auto& s : lps) {
    const std::string tok = gen_.token_text(s.token_id);
    ojson e;
    e["token"] = tok;
    e["logprob"] = clamp_logprob(s.logprob);
    e["bytes"] = utf8_bytes(tok);
    ojson top = ojson::array();
    for (size_t i = 0; i < s.top.size() && int32_t(i) < req_.top_logprobs; ++i) {
      const std::string t = gen_.token_text(s.top[i].token_id);
      top.push_back(
          {{"token", t}, {"logprob", clamp_logprob(s.top[i].logprob)}, {"bytes", utf8_bytes(t)}});
    }
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return content;
}

void CompletionJob::completion_logprobs(const std::vector<SampleLogprobs>& lps, Choice& c,
                                        ojson& out) const {
  if (out.is_null())
    out = {{"tokens", ojson::array()},
           {"token_logprobs", ojson::array()},
           {"top_logprobs", ojson::array()},
           {"text_offset", ojson::array()}};
  for (const auto& s : lps) {
    const std::string tok = gen_.token_text(s.token_id);
    out["tokens"].push_back(tok);
    out["token_logprobs"].push_back(clamp_logprob(s.logprob));
    ojson top = ojson::object();
    for (size_t i = 0; i < s.top.size() && int32_t(i) < req_.top_logprobs; ++i)
      top[gen_.token_text(s.top[i].token_id)] = clamp_logprob(s.top[i].logprob);
    if (req_.top_logprobs > 0) top[tok] = clamp_logprob(s.logprob);
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(c.text_offset);
    c.text_offset += tok.size();
  }
}

// The assistant message of a chat choice whose text goes through its parsers: content,
// reasoning_content and tool_calls.
ojson CompletionJob::chat_message(Choice& c) const {
  c.parser->feed(c.text);
  c.parser->finish();
  const std::string& content = c.parser->content();
  const auto& calls = c.parser->calls();
  ojson msg = {{"role", "assistant"}};
  msg["content"] = content.empty() && (!calls.empty() || !c.parser->reasoning().empty())
                       ? ojson(nullptr)
                       : ojson(content);
  if (c.parser->has_reasoning())
    msg["reasoning_content"] =
        c.parser->reasoning().empty() ? ojson(nullptr) : ojson(c.parser->reasoning());
  if (!calls.empty()) {
    ojson tcs = ojson::array();
    for (const auto& t : calls)
      tcs.push_back({{"id", t.id},
                     {"type", "function"},
                     {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
    msg["tool_calls"] = std::move(tcs);
  }
  return msg;
}

void CompletionJob::send_full() {
  if (responses_) {
    const Choice& c = choices_[0];
    return server_.send_json(
        conn_, ex_, 200,
        responses_->full(c.text, c.finish.value_or(FinishReason::kAbort), responses_usage()));
  }
  ojson j;
  j["id"] = ex_.request_id;
  j["object"] = object_name(false);
  j["created"] = created_;
  j["model"] = req_.model;
  ojson choices = ojson::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    ojson ch;
    ch["index"] = i;
    if (req_.chat && c.parser) {
      ch["message"] = chat_message(c);
    } else if (req_.chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      ch["text"] = req_.echo ? req_.prompt_texts[i / size_t(req_.params.n)] + c.text : c.text;
    }
    ch["logprobs"] =
        req_.logprobs
            ? (c.logprobs.is_null() && req_.chat ? ojson{{"content", ojson::array()}} : c.logprobs)
            : ojson(nullptr);
    ch["finish_reason"] = finish_reason(c);
    ch["stop_reason"] = c.stop_reason;
    choices.push_back(std::move(ch));
  }
  j["choices"] = std::move(choices);
  j["usage"] = usage_json();
  server_.send_json(conn_, ex_, 200, dump_json(j));
}

// ---- streaming --------------------------------------------------------------------------------

void CompletionJob::begin_stream() {
  Headers h = ex_.cors;
  h.emplace_back("Content-Type", "text/event-stream; charset=utf-8");
  h.emplace_back("Cache-Control", "no-cache");
  h.emplace_back("X-Request-Id", ex_.request_id);
  conn_->begin_stream(http::status::ok, std::move(h));
  server_.metrics_.record_http(ex_.route, "POST", 200);
  streamed_ = true;
  if (responses_) return conn_->write_chunk(responses_->begin());
  for (size_t i = 0; i < choices_.size(); ++i) {
    ojson c;
    c["index"] = i;
    if (req_.chat) {
      c["delta"] = {{"role", "assistant"}, {"content", ""}};
    } else {
      if (!req_.echo) continue;
      c["text"] = req_.prompt_texts[i / size_t(req_.params.n)];
      choices_[i].text_offset = c["text"].get<std::string>().size();
    }
    c["logprobs"] = nullptr;
    c["finish_reason"] = nullptr;
    ojson j = chunk_base();
    j["choices"] = ojson::array({std::move(c)});
    write_event(std::move(j));
  }
}

void CompletionJob::write_event(ojson j) {
  if (req_.include_usage) j["usage"] = req_.continuous_usage ? usage_json() : ojson(nullptr);
  conn_->write_chunk("data: " + dump_json(j) + "\n\n");
}

void CompletionJob::stream_delta(size_t ci, Choice& c, const SequenceDelta& d) {
  if (responses_) {
    if (!d.text.empty()) conn_->write_chunk(responses_->text(d.text));
    return;
  }
  if (c.parser) return stream_parsed(ci, c, d);
  if (d.text.empty() && !d.finish_reason && (!req_.logprobs || d.logprobs.empty())) return;
  ojson ch;
  ch["index"] = ci;
  if (req_.chat) {
    ch["delta"] = d.text.empty() ? ojson::object() : ojson{{"content", d.text}};
    ch["logprobs"] = req_.logprobs && !d.logprobs.empty()
                         ? ojson{{"content", chat_logprobs(d.logprobs)}}
                         : ojson(nullptr);
  } else {
    ch["text"] = d.text;
    ojson lp = nullptr;
    if (req_.logprobs && !d.logprobs.empty()) completion_logprobs(d.logprobs, c, lp);
    ch["logprobs"] = std::move(lp);
  }
  ch["finish_reason"] = d.finish_reason ? ojson(to_string(*d.finish_reason)) : ojson(nullptr);
  if (d.finish_reason) ch["stop_reason"] = c.stop_reason;
  ojson j = chunk_base();
  j["choices"] = ojson::array({std::move(ch)});
  write_event(std::move(j));
}

// A chat delta through the choice's parsers: reasoning and content first (with the delta's
// logprobs), then one chunk per tool-call piece; finish_reason on the last chunk.
void CompletionJob::stream_parsed(size_t ci, Choice& c, const SequenceDelta& d) {
  ChatDelta cd = c.parser->feed(d.text);
  if (d.finish_reason) {
    ChatDelta f = c.parser->finish();
    cd.reasoning += f.reasoning;
    cd.content += f.content;
    for (auto& t : f.calls) cd.calls.push_back(std::move(t));
  }
  const bool lp = req_.logprobs && !d.logprobs.empty();
  std::vector<ojson> deltas;
  ojson text = ojson::object();
  if (!cd.reasoning.empty()) text["reasoning_content"] = cd.reasoning;
  if (!cd.content.empty()) text["content"] = cd.content;
  if (!text.empty() || lp) deltas.push_back(std::move(text));
  for (const auto& t : cd.calls) {
    ojson tc;
    tc["index"] = t.index;
    if (!t.id.empty()) {
      tc["id"] = t.id;
      tc["type"] = "function";
      tc["function"] = {{"name", t.name}, {"arguments", t.arguments}};
    } else {
      tc["function"] = {{"arguments", t.arguments}};
    }
    deltas.push_back({{"tool_calls", ojson::array({std::move(tc)})}});
  }
  if (d.finish_reason && deltas.empty()) deltas.push_back(ojson::object());
  for (size_t k = 0; k < deltas.size(); ++k) {
    ojson ch;
    ch["index"] = ci;
    ch["delta"] = std::move(deltas[k]);
    ch["logprobs"] = k == 0 && lp ? ojson{{"content", chat_logprobs(d.logprobs)}} : ojson(nullptr);
    const bool last = k + 1 == deltas.size() && d.finish_reason;
    ch["finish_reason"] = last ? ojson(finish_reason(c)) : ojson(nullptr);
    if (last) ch["stop_reason"] = c.stop_reason;
    ojson j = chunk_base();
    j["choices"] = ojson::array({std::move(ch)});
    write_event(std::move(j));
  }
}

}  // namespace inferd::server
