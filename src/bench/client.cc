#include "bench/client.h"

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>

#include "bench/sse.h"
#include "core/error.h"
#include "core/rng.h"

namespace inferd::bench {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Gamma(shape, 1) by Marsaglia and Tsang.
double gamma_sample(Rng& rng, double shape) {
  if (shape < 1.0) {
    const double u = std::max(rng.uniform(), 1e-300);
    return gamma_sample(rng, shape + 1.0) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = rng.normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = rng.uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(std::max(u, 1e-300)) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

std::string short_text(std::string_view s, size_t n = 160) {
  std::string out(s.substr(0, n));
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > n) out += "...";
  return out;
}

// What one stream produced so far.
struct StreamState {
  bool done = false;
  Clock::time_point t_done;
  Clock::time_point t_last;
  std::string bad;  // bad_stream message
  std::optional<int32_t> usage_out;
  std::optional<int32_t> usage_in;
  std::optional<int32_t> usage_cached;
  std::optional<Clock::time_point> t_first_choice;  // first chunk with a choice, text or not
};

// One request's HTTP exchange (server/http_client.h).
using HttpExchange = server::ClientExchange;

class Runner {
 public:
  Runner(const ServeOptions& opts, const std::vector<BenchRequest>& reqs)
      : opts_(opts), reqs_(reqs), slot_timer_(ioc_), progress_timer_(ioc_) {
    chat_ = opts_.chat();
    target_ = opts_.base.path + opts_.endpoint;
    bodies_.reserve(reqs.size());
    for (const auto& r : reqs) bodies_.push_back(build_request_body(opts_, r));
    results_.resize(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      results_[i].index = i;
      results_[i].expected_output = reqs[i].output_len;
      results_[i].prompt_tokens = reqs[i].prompt_len;
      results_[i].long_prompt = reqs[i].long_prompt;
    }
  }

  RunResult run() {
    tcp::resolver resolver(ioc_);
    beast::error_code ec;
    const auto resolved = resolver.resolve(opts_.base.host, std::to_string(opts_.base.port), ec);
    if (ec) fail("cannot resolve '{}': {}", opts_.base.host, ec.message());
    endpoints_.assign(resolved.begin(), resolved.end());
    tty_ = isatty(STDERR_FILENO) != 0;
    t0_ = Clock::now();
    auto on_done = [this](std::exception_ptr e) {
      if (e && !error_) error_ = e;
    };
    if (!reqs_.empty()) {
      net::co_spawn(ioc_, dispatch(), on_done);
      if (opts_.progress) net::co_spawn(ioc_, progress(), on_done);
    }
    ioc_.run();
    if (error_) std::rethrow_exception(error_);
    RunResult out;
    out.duration_s = seconds(t_end_ - t0_);
    out.request_rate = opts_.request_rate;
    out.max_concurrency = opts_.max_concurrency;
    out.peak_in_flight = peak_in_flight_;
    out.requests = std::move(results_);
    return out;
  }

 private:
  double next_interval(Rng& rng) {
    const double rate = opts_.request_rate;
    const double theta = 1.0 / (rate * opts_.burstiness);
    return gamma_sample(rng, opts_.burstiness) * theta;
  }

  net::awaitable<void> dispatch() {
    net::steady_timer timer(ioc_);
    Rng rng(opts_.seed);
    const bool paced = std::isfinite(opts_.request_rate) && opts_.request_rate > 0;
    double t = 0;
    beast::error_code ec;
    for (size_t i = 0; i < reqs_.size(); ++i) {
      if (paced && i > 0) {
        t += next_interval(rng);
        timer.expires_at(
            t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t)));
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      while (opts_.max_concurrency > 0 && in_flight_ >= opts_.max_concurrency) {
        slot_timer_.expires_at(Clock::time_point::max());
        co_await slot_timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      ++in_flight_;
      peak_in_flight_ = std::max(peak_in_flight_, in_flight_);
      net::co_spawn(ioc_, one(i), [this](std::exception_ptr e) {
        if (e && !error_) error_ = e;
      });
    }
  }

  net::awaitable<void> one(size_t i) {
    try {
      co_await request(i);
    } catch (const std::exception& e) {
      fail_request(results_[i], "client", e.what());
    }
    --in_flight_;
    ++finished_;
    if (results_[i].success) {
      out_tokens_ += results_[i].output_tokens;
    } else {
      ++failed_;
    }
    slot_timer_.cancel_one();
    if (finished_ == reqs_.size()) {
      t_end_ = Clock::now();
      progress_timer_.cancel();
    }
  }

  static void fail_request(RequestResult& r, std::string kind, std::string msg) {
    r.success = false;
    r.error_kind = std::move(kind);
    r.error = std::move(msg);
  }

  std::unique_ptr<beast::tcp_stream> take_idle() {
    if (idle_.empty()) return nullptr;
    auto s = std::move(idle_.back());
    idle_.pop_back();
    return s;
  }

  void handle_event(std::string_view data, Clock::time_point now, Clock::time_point start,
                    RequestResult& r, StreamState& st) {
    if (!st.bad.empty() || st.done) return;
    if (data == "[DONE]") {
      st.done = true;
      st.t_done = now;
      return;
    }
    nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      st.bad = "chunk is not a JSON object: " + short_text(data);
      return;
    }
    if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
      std::string msg = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                            ? (*e)["message"].get<std::string>()
                            : e->dump();
      st.bad = "error in stream: " + short_text(msg);
      return;
    }
    if (auto c = j.find("choices"); c != j.end() && c->is_array() && !c->empty()) {
      const auto& ch = (*c)[0];
      if (!st.t_first_choice) st.t_first_choice = now;
      bool has_text = false;
      auto nonempty = [](const nlohmann::json& o, const char* key) {
        auto it = o.find(key);
        return it != o.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
      };
      if (chat_) {
        if (auto d = ch.find("delta"); d != ch.end() && d->is_object())
          has_text = nonempty(*d, "content") || nonempty(*d, "reasoning_content");
      } else {
        has_text = nonempty(ch, "text");
      }
      if (has_text) {
        if (r.chunks == 0) {
          r.ttft_s = seconds(now - start);
        } else {
          r.itl_s.push_back(seconds(now - st.t_last));
        }
        st.t_last = now;
        ++r.chunks;
      }
    }
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
      if (auto n = u->find("completion_tokens"); n != u->end() && n->is_number_integer())
        st.usage_out = n->get<int32_t>();
      if (auto n = u->find("prompt_tokens"); n != u->end() && n->is_number_integer())
        st.usage_in = n->get<int32_t>();
      if (auto d = u->find("prompt_tokens_details"); d != u->end() && d->is_object())
        if (auto n = d->find("cached_tokens"); n != d->end() && n->is_number_integer())
          st.usage_cached = n->get<int32_t>();
    }
  }

  net::awaitable<void> request(size_t i) {
    RequestResult& r = results_[i];
    const Clock::time_point start = Clock::now();
    r.start_s = seconds(start - t0_);
    const Clock::time_point deadline =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(opts_.request_timeout_s));
    HttpExchange x;
    if (!co_await send_request(i, deadline, x)) co_return;
    r.http_status = int(x.parser->get().result_int());
    if (r.http_status != 200) {
      co_await read_error_body(r, x);
      co_return;
    }
    StreamState st;
    co_await read_stream(x, start, r, st);
    if (finish_stream(r, st, x.ec, start) && !x.ec && x.parser->is_done() && x.parser->keep_alive())
      idle_.push_back(std::move(x.stream));
  }

  http::request<http::string_body> make_request(size_t i) const {
    http::request<http::string_body> req{http::verb::post, target_, 11};
    req.set(http::field::host, opts_.base.host_header());
    req.set(http::field::user_agent, "inferd-bench");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    if (!opts_.api_key.empty()) req.set(http::field::authorization, "Bearer " + opts_.api_key);
    req.keep_alive(true);
    req.body() = bodies_[i];
    req.prepare_payload();
    return req;
  }

  // Sends request i, on an idle kept-alive connection when there is one (once more on a fresh
  // connection when the server closed that meanwhile), and reads the response's header. False
  // when that failed (recorded in the request's result).
  net::awaitable<bool> send_request(size_t i, Clock::time_point deadline, HttpExchange& x) {
    RequestResult& r = results_[i];
    http::request<http::string_body> req = make_request(i);
    const beast::error_code& ec = x.ec;
    x.stream = take_idle();
    server::SendOptions o;
    o.arm_connect = o.arm = [deadline](beast::tcp_stream& s) { s.expires_at(deadline); };
    const server::SendResult sent = co_await server::send_request(x, endpoints_, req, o);
    if (sent == server::SendResult::kConnectFailed) {
      if (ec == beast::error::timeout)
        fail_request(r, "timeout", "connect timed out");
      else
        fail_request(r, "connect", ec.message());
      co_return false;
    }
    if (ec) {
      if (ec == beast::error::timeout)
        fail_request(r, "timeout", "no response headers before the timeout");
      else
        fail_request(r, "disconnect", "before the response: " + ec.message());
      co_return false;
    }
    co_return true;
  }

  // A non-200 answer fails the request with the start of its body (the connection is kept when
  // the answer ended cleanly).
  net::awaitable<void> read_error_body(RequestResult& r, HttpExchange& x) {
    auto& p = *x.parser;
    char chunk[8192];
    std::string body;
    while (!p.is_done() && body.size() < 4096) {
      p.get().body().data = chunk;
      p.get().body().size = sizeof(chunk);
      co_await http::async_read_some(*x.stream, x.buf, p,
                                     net::redirect_error(net::use_awaitable, x.ec));
      if (x.ec == http::error::need_buffer) x.ec = {};
      body.append(chunk, sizeof(chunk) - p.get().body().size);
      if (x.ec) break;
    }
    fail_request(r, "http_" + std::to_string(r.http_status), short_text(body, 300));
    r.retry_after = std::string(p.get()[http::field::retry_after]);
    if (!x.ec && p.is_done() && p.keep_alive()) idle_.push_back(std::move(x.stream));
  }

  // Reads the SSE body, each event through handle_event, until it ends, fails (`x.ec`) or turns
  // out bad (`st.bad`).
  net::awaitable<void> read_stream(HttpExchange& x, Clock::time_point start, RequestResult& r,
                                   StreamState& st) {
    auto& p = *x.parser;
    SseParser sse;
    char chunk[8192];
    while (!p.is_done()) {
      p.get().body().data = chunk;
      p.get().body().size = sizeof(chunk);
      co_await http::async_read_some(*x.stream, x.buf, p,
                                     net::redirect_error(net::use_awaitable, x.ec));
      if (x.ec == http::error::need_buffer) x.ec = {};
      const size_t n = sizeof(chunk) - p.get().body().size;
      if (n > 0) {
        const Clock::time_point now = Clock::now();
        sse.feed(std::string_view(chunk, n), [&](std::string_view, std::string_view data) {
          handle_event(data, now, start, r, st);
        });
      }
      if (x.ec || !st.bad.empty()) break;
    }
    if (!x.ec && st.bad.empty())
      sse.finish([&](std::string_view, std::string_view data) {
        handle_event(data, Clock::now(), start, r, st);
      });
  }

  // The result of a stream that was read: a failure (a bad stream, a timeout or disconnect before
  // [DONE], no [DONE], no choice at all) or the request's measurements. True on success.
  bool finish_stream(RequestResult& r, const StreamState& st, const beast::error_code& ec,
                     Clock::time_point start) {
    if (!st.bad.empty()) {
      fail_request(r, "bad_stream", st.bad);
      return false;
    }
    if (ec && !st.done) {
      if (ec == beast::error::timeout)
        fail_request(r, "timeout", "stream not finished before the timeout");
      else
        fail_request(r, "disconnect", "mid-stream: " + ec.message());
      return false;
    }
    if (!st.done) {
      fail_request(r, "bad_stream", "the stream ended without data: [DONE]");
      return false;
    }
    if (r.chunks == 0) {
      // A generation may end before any text (EOS first): a valid, empty answer whose first
      // token is the first chunk with a choice.
      if (!st.t_first_choice) {
        fail_request(r, "bad_stream", "no choices in the stream");
        return false;
      }
      r.ttft_s = seconds(*st.t_first_choice - start);
    }
    r.success = true;
    r.e2e_s = seconds(st.t_done - start);
    r.usage_reported = st.usage_out.has_value();
    r.output_tokens = st.usage_out ? *st.usage_out : r.chunks;
    if (st.usage_in) r.prompt_tokens = *st.usage_in;
    if (st.usage_cached) r.cached_tokens = *st.usage_cached;
    return true;
  }

  net::awaitable<void> progress() {
    beast::error_code ec;
    Clock::time_point last_line = Clock::now();
    while (finished_ < reqs_.size()) {
      progress_timer_.expires_after(std::chrono::milliseconds(500));
      co_await progress_timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
      const Clock::time_point now = Clock::now();
      const bool last = finished_ == reqs_.size();
      if (!tty_ && !last && now - last_line < std::chrono::seconds(10)) continue;
      last_line = now;
      const double el = seconds(now - t0_);
      std::fprintf(stderr,
                   "%s%s[%6.1fs] %zu/%zu done, %zu failed, %d in flight | %.2f req/s, %.0f "
                   "output tok/s%s",
                   tty_ ? "\r\033[K" : "", opts_.progress_label.c_str(), el, finished_,
                   reqs_.size(), failed_, in_flight_, double(finished_) / std::max(el, 1e-9),
                   double(out_tokens_) / std::max(el, 1e-9), tty_ && !last ? "" : "\n");
      std::fflush(stderr);
    }
  }

  const ServeOptions& opts_;
  const std::vector<BenchRequest>& reqs_;
  net::io_context ioc_{1};
  std::vector<tcp::endpoint> endpoints_;
  std::string target_;
  bool chat_ = false;
  bool tty_ = false;
  std::vector<std::string> bodies_;
  std::vector<RequestResult> results_;
  std::vector<std::unique_ptr<beast::tcp_stream>> idle_;
  net::steady_timer slot_timer_;
  net::steady_timer progress_timer_;
  int32_t in_flight_ = 0;
  int32_t peak_in_flight_ = 0;
  size_t finished_ = 0;
  size_t failed_ = 0;
  int64_t out_tokens_ = 0;
  Clock::time_point t0_;
  Clock::time_point t_end_;
  std::exception_ptr error_;
};

}  // namespace

bool ServeOptions::chat() const {
  return endpoint.ends_with("chat/completions");
}

std::optional<double> RequestResult::tpot_s() const {
  if (!success || output_tokens < 2) return std::nullopt;
  return (e2e_s - ttft_s) / double(output_tokens - 1);
}

std::string build_request_body(const ServeOptions& opts, const BenchRequest& req) {
  nlohmann::json b;
  b["model"] = opts.model;
  if (opts.chat()) {
    if (req.messages) {
      b["messages"] = *req.messages;
    } else {
      b["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", req.prompt}}});
    }
  } else {
    b["prompt"] = req.prompt;
  }
  b["max_tokens"] = req.output_len;
  b["stream"] = true;
  if (opts.include_usage) b["stream_options"] = {{"include_usage", true}};
  if (opts.temperature) b["temperature"] = *opts.temperature;
  if (opts.force_output_len) {
    b["ignore_eos"] = true;
    b["min_tokens"] = req.output_len;
  }
  for (const auto& [k, v] : opts.extra_body.items()) b[k] = v;
  return b.dump();
}

RunResult run_serving(const ServeOptions& opts, const std::vector<BenchRequest>& requests) {
  if (opts.max_concurrency < 0)
    fail("--max-concurrency must be >= 0, got {}", opts.max_concurrency);
  if (!(opts.request_rate > 0)) fail("--request-rate must be positive, got {}", opts.request_rate);
  if (!(opts.burstiness > 0)) fail("--burstiness must be positive, got {}", opts.burstiness);
  if (!(opts.request_timeout_s > 0))
    fail("--request-timeout must be positive, got {}", opts.request_timeout_s);
  raise_open_file_limit();
  Runner runner(opts, requests);
  return runner.run();
}

void raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace inferd::bench
