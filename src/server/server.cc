#include "server/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "server/api_error.h"
#include "server/api_keys.h"
#include "server/protocol.h"
#include "server/ui_page.h"

namespace inferd::server {

using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

std::string ApiError::body() const {
  ojson e = ojson::object();
  e["message"] = what();
  e["type"] = type_;
  e["param"] = param_ ? ojson(*param_) : ojson(nullptr);
  e["code"] = code_ ? ojson(*code_) : ojson(nullptr);
  ojson j;
  j["error"] = std::move(e);
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

namespace {

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   uint64_t(Clock::now().time_since_epoch().count())};
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = kHex[rng() & 15];
  return s;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
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

struct Server::Exchange {
  std::string route;
  std::string method;
  std::string request_id;
  std::string api_key;
  Clock::time_point start = Clock::now();
  Headers cors;
};

// ---- CompletionJob: one /v1/(chat/)completions request, on its connection's strand ----------

class CompletionJob : public std::enable_shared_from_this<CompletionJob> {
 public:
  CompletionJob(Server& server, std::shared_ptr<Connection> conn, Server::Exchange ex,
                CompletionRequest req)
      : server_(server),
        gen_(*server.generator_),
        conn_(std::move(conn)),
        ex_(std::move(ex)),
        req_(std::move(req)),
        timer_(conn_->executor()) {
    created_ = unix_now();
    const size_t n = size_t(req_.params.n);
    subs_.resize(req_.prompts.size());
    choices_.resize(req_.prompts.size() * n);
    if (req_.chat && req_.output.active())
      for (auto& c : choices_) c.parser.emplace(req_.output);
  }

  // Submits to the engine and starts answering. Throws ApiError when nothing could be submitted.
  void start(uint64_t job_id) {
    job_id_ = job_id;
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
    conn_->on_peer_gone([self] { self->on_peer_gone(); });
    if (server_.config_.request_timeout_s > 0) {
      timer_.expires_after(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(server_.config_.request_timeout_s)));
      timer_.async_wait([self](beast::error_code ec) {
        if (ec || self->done_) return;
        self->fail_with(ApiError(408,
                                 fmt::format("The request took longer than the server's limit "
                                             "of {} s (--request-timeout) and was aborted.",
                                             self->server_.config_.request_timeout_s),
                                 "timeout_error", std::nullopt, "request_timeout"));
      });
    }
    if (req_.stream) begin_stream();
  }

  // Aborts the generation; the client gets `e` (a status for a plain response, an error event
  // in a stream). Any thread.
  void abort_with(ApiError e) {
    net::post(conn_->executor(), [self = shared_from_this(), e = std::move(e)]() mutable {
      if (!self->done_) self->fail_with(std::move(e));
    });
  }

 private:
  struct Sub {
    std::string engine_id;
    bool submitted = false;
    bool finished = false;
    int32_t prompt_tokens = 0;
    int32_t cached_tokens = 0;
  };
  struct Choice {
    std::string text;
    int32_t tokens = 0;
    std::optional<FinishReason> finish;
    ojson stop_reason = nullptr;
    ojson logprobs = nullptr;  // non-streaming accumulation
    size_t text_offset = 0;    // completions logprobs text_offset
    // Chat with a reasoning or tool-call parser: the text becomes reasoning_content / content /
    // tool_calls.
    std::optional<ChatOutputParser> parser;
  };

  // OpenAI's finish_reason: "tool_calls" when the model stopped after calling tools.
  std::string finish_reason(const Choice& c) const {
    const FinishReason f = c.finish.value_or(FinishReason::kAbort);
    if (f == FinishReason::kStop && c.parser && !c.parser->calls().empty()) return "tool_calls";
    return to_string(f);
  }

  void abort_submitted() {
    for (auto& s : subs_)
      if (s.submitted && !s.finished) gen_.abort(s.engine_id);
  }

  void on_peer_gone() {
    if (done_) return;
    client_gone_ = true;
    abort_submitted();
  }

  void fail_with(ApiError e) {
    if (failure_) return;
    failure_ = std::move(e);
    abort_submitted();
  }

  std::string object_name(bool chunk) const {
    if (req_.chat) return chunk ? "chat.completion.chunk" : "chat.completion";
    return "text_completion";
  }

  ojson usage_json() const {
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

  ojson chunk_base() const {
    ojson j;
    j["id"] = ex_.request_id;
    j["object"] = object_name(true);
    j["created"] = created_;
    j["model"] = req_.model;
    return j;
  }

  void write_event(ojson j) {
    if (req_.include_usage) j["usage"] = req_.continuous_usage ? usage_json() : ojson(nullptr);
    conn_->write_chunk("data: " + dump(j) + "\n\n");
  }

  void begin_stream() {
    Headers h = ex_.cors;
    h.emplace_back("Content-Type", "text/event-stream; charset=utf-8");
    h.emplace_back("Cache-Control", "no-cache");
    h.emplace_back("X-Request-Id", ex_.request_id);
    conn_->begin_stream(http::status::ok, std::move(h));
    server_.metrics_.record_http(ex_.route, "POST", 200);
    streamed_ = true;
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

  // Logprobs of the tokens of one delta, in the API's shape.
  ojson chat_logprobs(const std::vector<SampleLogprobs>& lps) const {
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

  void completion_logprobs(const std::vector<SampleLogprobs>& lps, Choice& c, ojson& out) const {
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

  void on_output(RequestOutput&& out, Clock::time_point t) {
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

  // A chat delta through the choice's parsers: reasoning and content first (with the delta's
  // logprobs), then one chunk per tool-call piece; finish_reason on the last chunk.
  void stream_parsed(size_t ci, Choice& c, const SequenceDelta& d) {
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
      ch["logprobs"] =
          k == 0 && lp ? ojson{{"content", chat_logprobs(d.logprobs)}} : ojson(nullptr);
      const bool last = k + 1 == deltas.size() && d.finish_reason;
      ch["finish_reason"] = last ? ojson(finish_reason(c)) : ojson(nullptr);
      if (last) ch["stop_reason"] = c.stop_reason;
      ojson j = chunk_base();
      j["choices"] = ojson::array({std::move(ch)});
      write_event(std::move(j));
    }
  }

  void stream_delta(size_t ci, Choice& c, const SequenceDelta& d) {
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

  void complete() {
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
      if (streamed_) {
        conn_->write_chunk("data: " + failure_->body() + "\n\n");
        conn_->write_chunk("data: [DONE]\n\n");
        conn_->end_stream();
      } else {
        server_.send_error(conn_, ex_, *failure_);
      }
    } else if (streamed_) {
      if (req_.include_usage) {
        ojson j = chunk_base();
        j["choices"] = ojson::array();
        j["usage"] = usage_json();
        conn_->write_chunk("data: " + dump(j) + "\n\n");
      }
      conn_->write_chunk("data: [DONE]\n\n");
      conn_->end_stream();
    } else {
      send_full();
    }
  }

  void send_full() {
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
        ch["message"] = std::move(msg);
      } else if (req_.chat) {
        ch["message"] = {{"role", "assistant"}, {"content", c.text}};
      } else {
        ch["text"] = req_.echo ? req_.prompt_texts[i / size_t(req_.params.n)] + c.text : c.text;
      }
      ch["logprobs"] = req_.logprobs
                           ? (c.logprobs.is_null() && req_.chat ? ojson{{"content", ojson::array()}}
                                                                : c.logprobs)
                           : ojson(nullptr);
      ch["finish_reason"] = finish_reason(c);
      ch["stop_reason"] = c.stop_reason;
      choices.push_back(std::move(ch));
    }
    j["choices"] = std::move(choices);
    j["usage"] = usage_json();
    server_.send_json(conn_, ex_, 200, dump(j));
  }

  void record(int status, Clock::time_point end) {
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

  Server& server_;
  Generator& gen_;
  std::shared_ptr<Connection> conn_;
  Server::Exchange ex_;
  CompletionRequest req_;
  net::steady_timer timer_;
  uint64_t job_id_ = 0;
  int64_t created_ = 0;
  std::vector<Sub> subs_;
  std::vector<Choice> choices_;
  Clock::time_point first_token_{}, last_token_{};
  bool streamed_ = false;
  bool client_gone_ = false;
  bool done_ = false;
  std::optional<ApiError> failure_;
};

// ---- Server -----------------------------------------------------------------------------------

Server::Server(ServerConfig config, std::shared_ptr<Generator> generator)
    : config_(std::move(config)),
      generator_(std::move(generator)),
      metrics_(config_.served_model_names.empty() ? "" : config_.served_model_names.front()),
      limiter_(config_.rate_limit_rpm, config_.rate_limit_tpm),
      http_(config_.http, *this) {
  INFERD_CHECK(generator_ != nullptr, "Server needs a generator");
  if (config_.served_model_names.empty()) config_.served_model_names.push_back("model");
}

Server::~Server() {
  stop();
}

void Server::start() {
  http_.start();
  LOG_INFO("serving {} on http://{}:{}", config_.served_model_names.front(), config_.http.host,
           http_.port());
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  draining_ = true;
  ready_ = false;
  http_.stop();
}

size_t Server::active_requests() const {
  std::lock_guard lk(jobs_mu_);
  return jobs_.size();
}

void Server::add_job(uint64_t id, const std::shared_ptr<CompletionJob>& job) {
  std::lock_guard lk(jobs_mu_);
  jobs_[id] = job;
}

void Server::remove_job(uint64_t id) {
  std::lock_guard lk(jobs_mu_);
  jobs_.erase(id);
}

void Server::drain_and_stop() {
  if (stopped_) return;
  draining_ = true;
  ready_ = false;
  http_.stop_accepting();
  LOG_INFO("draining: {} request(s) in flight, waiting up to {} s", active_requests(),
           config_.drain_timeout_s);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(config_.drain_timeout_s));
  while (active_requests() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (active_requests() > 0) {
    std::vector<std::shared_ptr<CompletionJob>> live;
    {
      std::lock_guard lk(jobs_mu_);
      for (auto& [id, w] : jobs_)
        if (auto j = w.lock()) live.push_back(j);
    }
    LOG_WARN("drain timeout: aborting {} request(s)", live.size());
    for (auto& j : live)
      j->abort_with(ApiError(503, "The server is shutting down; the request was aborted.",
                             "service_unavailable_error", std::nullopt, "server_shutdown"));
    const auto d2 = Clock::now() + std::chrono::seconds(5);
    while (active_requests() > 0 && Clock::now() < d2)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Let the last responses reach their clients.
  const auto d3 = Clock::now() + std::chrono::seconds(2);
  while (http_.num_connections() > 0 && Clock::now() < d3)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop();
  LOG_INFO("drained; stopped");
}

Response Server::http_error(int status, const std::string& message, unsigned version) {
  ApiError e(status, message, "invalid_request_error", std::nullopt,
             status == 413 ? std::optional<std::string>("request_too_large") : std::nullopt);
  Response res{http::status(status), version};
  res.set(http::field::content_type, "application/json");
  res.body() = e.body();
  metrics_.record_http("-", "-", status);
  LOG_INFO("request route=- status={} error=\"{}\"", status, message);
  return res;
}

// The handler label of a path for metrics: known routes only, so that arbitrary paths cannot
// grow the label set.
static std::string handler_label(const std::string& path) {
  static const char* kRoutes[] = {"/health",         "/ready",
                                  "/metrics",        "/version",
                                  "/tokenize",       "/detokenize",
                                  "/v1/models",      "/v1/chat/completions",
                                  "/v1/completions", "/"};
  for (const char* r : kRoutes)
    if (path == r) return path;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{model}";
  return "other";
}

void Server::send(const std::shared_ptr<Connection>& conn, Exchange& ex, Response&& res) {
  for (const auto& [k, v] : ex.cors) res.set(k, v);
  metrics_.record_http(handler_label(ex.route), ex.method, res.result_int());
  conn->respond(std::move(res));
}

void Server::send_json(const std::shared_ptr<Connection>& conn, Exchange& ex, int status,
                       const std::string& body) {
  Response res{http::status(status), 11};
  res.set(http::field::content_type, "application/json");
  res.body() = body;
  send(conn, ex, std::move(res));
}

void Server::send_error(const std::shared_ptr<Connection>& conn, Exchange& ex, const ApiError& e) {
  Response res{http::status(e.status()), 11};
  res.set(http::field::content_type, "application/json");
  if (e.retry_after_s() > 0) res.set(http::field::retry_after, std::to_string(e.retry_after_s()));
  if (e.status() == 401) res.set(http::field::www_authenticate, "Bearer");
  res.body() = e.body();
  send(conn, ex, std::move(res));
}

void Server::check_auth(const Request& req) const {
  check_bearer(req[http::field::authorization], config_.api_keys);
}

void Server::handle(const std::shared_ptr<Connection>& conn, Request&& req) {
  Exchange ex;
  std::string target(req.target());
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
  ex.route = target;
  ex.method = std::string(req.method_string());
  if (req.method() == http::verb::unknown) ex.method = "other";
  // CORS
  const std::string origin(req[http::field::origin]);
  const bool origin_ok = cors_headers(origin, config_.allowed_origins, ex.cors);
  try {
    if (req.method() == http::verb::options && !origin.empty() &&
        req.find(http::field::access_control_request_method) != req.end()) {
      if (!origin_ok)
        throw ApiError(400, fmt::format("Disallowed CORS origin '{}'.", origin),
                       "invalid_request_error", std::nullopt, "cors_origin");
      Response res{http::status::ok, req.version()};
      res.set(http::field::access_control_allow_methods, "GET, POST, OPTIONS");
      const std::string_view rh = req[http::field::access_control_request_headers];
      res.set(http::field::access_control_allow_headers,
              rh.empty() ? std::string("Authorization, Content-Type") : std::string(rh));
      res.set(http::field::access_control_max_age, "600");
      send(conn, ex, std::move(res));
      return;
    }
    route(conn, req, ex);
  } catch (const ApiError& e) {
    if (ex.route.rfind("/v1/", 0) == 0 || e.status() >= 400)
      LOG_INFO("request route={} status={} error=\"{}\"", ex.route, e.status(), e.what());
    send_error(conn, ex, e);
  } catch (const std::exception& e) {
    LOG_ERROR("request route={} status=500 error=\"{}\"", ex.route, e.what());
    send_error(conn, ex,
               ApiError(500, std::string("Internal server error: ") + e.what(), "server_error"));
  }
}

void Server::route(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
  const std::string& path = ex.route;
  const http::verb m = req.method();
  auto allow = [&](const char* methods) {
    ApiError e(
        405, fmt::format("Method {} is not allowed on {}; allowed: {}.", ex.method, path, methods),
        "invalid_request_error", std::nullopt, "method_not_allowed");
    Response res{http::status::method_not_allowed, 11};
    res.set(http::field::allow, methods);
    res.set(http::field::content_type, "application/json");
    res.body() = e.body();
    send(conn, ex, std::move(res));
  };
  const bool is_get = m == http::verb::get;
  const bool is_post = m == http::verb::post;

  if (path == "/" && config_.ui) {
    if (!is_get) return allow("GET");
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/html; charset=utf-8");
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Content-Type-Options", "nosniff");
    // The page is self-contained: nothing may load from elsewhere.
    res.set("Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'");
    res.body() = std::string(chat_page());
    return send(conn, ex, std::move(res));
  }
  if (path == "/health") {
    if (!is_get) return allow("GET");
    Response res{http::status::ok, 11};
    return send(conn, ex, std::move(res));
  }
  if (path == "/ready") {
    if (!is_get) return allow("GET");
    if (!ready_ || draining_)
      throw ApiError(503, draining_ ? "The server is shutting down." : "The server is warming up.",
                     "service_unavailable_error", std::nullopt, "not_ready");
    return send_json(conn, ex, 200, R"({"status":"ready"})");
  }
  if (path == "/metrics") {
    if (!is_get) return allow("GET");
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = metrics_.render(generator_->stats());
    return send(conn, ex, std::move(res));
  }
  if (path == "/version") {
    if (!is_get) return allow("GET");
    return send_json(conn, ex, 200, R"({"version":"0.1.0"})");
  }
  if (path == "/tokenize" || path == "/detokenize") {
    if (!is_post) return allow("POST");
    const json body = parse_json_body(req.body());
    if (auto mname = get_string(body, "model");
        mname && std::find(config_.served_model_names.begin(), config_.served_model_names.end(),
                           *mname) == config_.served_model_names.end())
      throw ApiError(404, fmt::format("The model `{}` does not exist.", *mname),
                     "invalid_request_error", "model", "model_not_found");
    const ojson out = path == "/tokenize" ? tokenize_body(body, *generator_, config_.request_limits)
                                          : detokenize_body(body, *generator_);
    return send_json(conn, ex, 200, dump(out));
  }
  if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) {
    check_auth(req);
    if (!is_get) return allow("GET");
    auto card = [&](const std::string& name) {
      ojson c;
      c["id"] = name;
      c["object"] = "model";
      c["created"] = unix_now();
      c["owned_by"] = "inferd";
      c["root"] = config_.model_root.empty() ? name : config_.model_root;
      c["parent"] = nullptr;
      c["max_model_len"] = generator_->max_model_len();
      return c;
    };
    if (path == "/v1/models") {
      ojson data = ojson::array();
      for (const auto& n : config_.served_model_names) data.push_back(card(n));
      return send_json(conn, ex, 200, dump(ojson{{"object", "list"}, {"data", std::move(data)}}));
    }
    const std::string name = path.substr(std::string("/v1/models/").size());
    if (std::find(config_.served_model_names.begin(), config_.served_model_names.end(), name) ==
        config_.served_model_names.end())
      throw ApiError(404, fmt::format("The model `{}` does not exist.", name),
                     "invalid_request_error", "model", "model_not_found");
    return send_json(conn, ex, 200, dump(card(name)));
  }
  if (path == "/v1/chat/completions" || path == "/v1/completions") {
    check_auth(req);
    if (!is_post) return allow("POST");
    return handle_completion(conn, req, ex, path == "/v1/chat/completions");
  }
  if (path.rfind("/v1/", 0) == 0) check_auth(req);
  throw ApiError(404, fmt::format("Unknown route: {} {}", ex.method, path), "invalid_request_error",
                 std::nullopt, "not_found");
}

void Server::handle_completion(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex,
                               bool chat) {
  if (draining_)
    throw ApiError(503, "The server is shutting down.", "service_unavailable_error", std::nullopt,
                   "server_shutdown")
        .with_retry_after(config_.retry_after_s);
  const std::string_view auth = req[http::field::authorization];
  ex.api_key = auth.size() > 7 ? std::string(auth.substr(7)) : std::string();
  const json body = parse_json_body(req.body());
  ValidationContext vc;
  vc.generator = generator_.get();
  vc.model_names = config_.served_model_names;
  vc.limits = config_.request_limits;
  vc.parsing = config_.chat_parsing;
  vc.raw_body = req.body();
  CompletionRequest cr = parse_completion_request(body, chat, vc);
  int64_t prompt_tokens = 0;
  for (const auto& p : cr.prompts) prompt_tokens += int64_t(p.size());
  if (limiter_.enabled()) {
    const auto v = limiter_.admit(ex.api_key, prompt_tokens);
    if (!v.allowed)
      throw ApiError(429,
                     fmt::format("Rate limit reached for {} per minute on this API key. Try "
                                 "again in {:.1f} s.",
                                 v.kind, v.retry_after_s),
                     v.kind, std::nullopt, "rate_limit_exceeded")
          .with_retry_after(std::max(1, int(std::ceil(v.retry_after_s))));
  }
  ex.request_id = (chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
  const uint64_t job_id = next_job_.fetch_add(1);
  auto job = std::make_shared<CompletionJob>(*this, conn, ex, std::move(cr));
  add_job(job_id, job);
  try {
    job->start(job_id);
  } catch (...) {
    remove_job(job_id);
    throw;
  }
}

}  // namespace inferd::server
