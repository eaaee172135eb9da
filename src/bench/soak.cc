// `inferd bench soak` (see soak.h): one thread per connection, each sending the next request of
// the run on its own keep-alive client (http_util.h); a monitor thread samples the server's
// resident memory and prints progress.
#include "bench/soak.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "bench/client.h"
#include "bench/soak_check.h"
#include "core/error.h"

namespace inferd::bench {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string one_line(std::string_view s, size_t n = 240) {
  std::string out(s.substr(0, n));
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return s.size() > n ? out + "..." : out;
}

class SoakRun {
 public:
  explicit SoakRun(const SoakOptions& o) : o_(o) {}

  SoakReport run() {
    raise_open_file_limit();
    rep_.num_requests = o_.num_requests;
    warmup_count_ = int64_t(double(o_.num_requests) * o_.warmup_share);
    t0_ = Clock::now();
    std::thread monitor([this] { monitor_loop(); });
    std::vector<std::thread> workers;
    for (int32_t c = 0; c < o_.concurrency; ++c) workers.emplace_back([this] { worker(); });
    for (auto& w : workers) w.join();
    rep_.duration_s = since(t0_);
    {
      std::lock_guard lk(mu_);
      stop_monitor_ = true;
    }
    cv_.notify_all();
    monitor.join();
    wait_idle();
    return rep_;
  }

 private:
  // Resident memory of the server now (bytes; 0: unknown), from /metrics or /proc/<pid>.
  double sample_rss(SyncHttpClient& c) {
    try {
      const HttpResult m = c.get("/metrics");
      if (m.status == 200)
        if (auto v = prometheus_value(m.body, "process_resident_memory_bytes")) {
          rss_source_ = "/metrics process_resident_memory_bytes";
          return *v;
        }
    } catch (const Error&) {
    }
    if (o_.server_pid > 0) {
      std::ifstream f("/proc/" + std::to_string(o_.server_pid) + "/statm");
      double size = 0, resident = 0;
      if (f >> size >> resident) {
        rss_source_ = "/proc/" + std::to_string(o_.server_pid) + "/statm";
        return resident * double(sysconf(_SC_PAGESIZE));
      }
    }
    return 0;
  }

  void monitor_loop() {
    SyncHttpClient c(o_.base, o_.api_key, std::chrono::seconds(10));
    Clock::time_point last_line = Clock::now();
    std::unique_lock lk(mu_);
    while (!stop_monitor_) {
      lk.unlock();
      const double rss = sample_rss(c);
      lk.lock();
      rep_.rss_peak = std::max(rep_.rss_peak, rss);
      if (rep_.rss_base == 0 && finished_ >= warmup_count_) rep_.rss_base = rss;
      if (o_.progress && (since(last_line) >= 10 || finished_ == o_.num_requests)) {
        last_line = Clock::now();
        const double el = since(t0_);
        std::fprintf(stderr,
                     "[%7.1fs] %lld/%lld done, %.1f req/s | 5xx %lld, lost %lld, failed checks "
                     "%lld, 429 %lld | server RSS %.1f MiB\n",
                     el, (long long)finished_, (long long)o_.num_requests,
                     double(finished_) / std::max(el, 1e-9), (long long)rep_.server_errors,
                     (long long)rep_.lost, (long long)rep_.failed_checks, (long long)rep_.shed,
                     rss / 1048576.0);
      }
      cv_.wait_for(lk, std::chrono::seconds(2));
    }
  }

  // After the last answer: the gauges must read 0 within idle_timeout_s; then the final RSS.
  void wait_idle() {
    SyncHttpClient c(o_.base, o_.api_key, std::chrono::seconds(10));
    const Clock::time_point t = Clock::now();
    for (;;) {
      std::string page;
      try {
        const HttpResult m = c.get("/metrics");
        if (m.status == 200) page = m.body;
      } catch (const Error&) {
      }
      rep_.running = prometheus_value(page, "vllm:num_requests_running");
      rep_.waiting = prometheus_value(page, "vllm:num_requests_waiting");
      rep_.kv_usage = prometheus_value(page, "vllm:kv_cache_usage_perc");
      rep_.idle = rep_.running && rep_.waiting && rep_.kv_usage && *rep_.running == 0 &&
                  *rep_.waiting == 0 && *rep_.kv_usage == 0;
      rep_.idle_after_s = since(t);
      if (rep_.idle || rep_.idle_after_s > o_.idle_timeout_s) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    rep_.rss_end = sample_rss(c);
    rep_.rss_peak = std::max(rep_.rss_peak, rep_.rss_end);
    if (rep_.rss_base == 0) rep_.rss_base = rep_.rss_end;
    rep_.rss_source = rss_source_;
  }

  void failure(int64_t& counter, const SoakRequest& r, uint64_t i, const std::string& what) {
    std::lock_guard lk(mu_);
    ++counter;
    if (rep_.failures.size() < o_.max_failures_listed)
      rep_.failures.push_back(fmt::format("request {} ({}, {}): {}", i, soak_kind_name(r.kind),
                                          r.path, one_line(what, 400)));
  }

  // The determinism probes: the first answer of each is the reference.
  void compare_probe(const SoakRequest& r, uint64_t i, const std::string& text) {
    std::unique_lock lk(mu_);
    auto [it, first] = probe_text_.try_emplace(r.probe, text);
    if (first) return;
    ++rep_.probe_repeats;
    if (it->second == text) return;
    lk.unlock();
    failure(rep_.probe_mismatches, r, i,
            fmt::format("probe {} (same seed) gave '{}', first '{}'", r.probe, one_line(text, 120),
                        one_line(it->second, 120)));
  }

  // One request: sent, its answer classified and checked.
  void one(SyncHttpClient& c, uint64_t i) {
    const SoakRequest r = make_soak_request(o_.seed, i, o_.model, o_.mix);
    int status = 0;
    std::string body;
    bool stopped = false;
    try {
      if (!r.stream) {
        HttpResult h = c.post_json(r.path, r.body);
        status = h.status;
        body = std::move(h.body);
      } else {
        int32_t reads = 0;
        const auto res = c.post_stream(
            r.path, r.body,
            [&](std::string_view d) {
              body.append(d);
              ++reads;
              if (r.slow_read_ms > 0)
                std::this_thread::sleep_for(std::chrono::milliseconds(r.slow_read_ms));
            },
            [&] { return r.abort_after_chunks > 0 && reads >= r.abort_after_chunks; });
        status = res.status;
        stopped = res.stopped;
        if (status != 200) body = res.body;
      }
    } catch (const Error& e) {
      record_status(r, 0);
      failure(rep_.lost, r, i, std::string("no answer: ") + e.what());
      return;
    }
    record_status(r, status);
    if (status >= 500)
      return failure(rep_.server_errors, r, i, fmt::format("{}: {}", status, body));
    if (r.kind == SoakKind::kHostile) {
      const std::string e = check_hostile_answer(r, status, body);
      if (!e.empty()) return failure(rep_.failed_checks, r, i, e);
      std::lock_guard lk(mu_);
      ++rep_.hostile_refused;
      return;
    }
    if (status == 429) {
      std::lock_guard lk(mu_);
      ++rep_.shed;
      return;
    }
    if (status != 200)
      return failure(rep_.failed_checks, r, i,
                     fmt::format("a valid request answered {}: {}", status, body));
    if (stopped) {
      std::lock_guard lk(mu_);
      ++rep_.aborted;
      return;
    }
    const SoakCheck ck = check_soak_answer(r, body);
    if (!ck.error.empty()) {
      const bool cut = ck.error.find("without data: [DONE]") != std::string::npos;
      return failure(cut ? rep_.lost : rep_.failed_checks, r, i, ck.error);
    }
    if (r.kind == SoakKind::kDeterminism) compare_probe(r, i, ck.text);
    std::lock_guard lk(mu_);
    ++rep_.ok;
    rep_.prompt_tokens += ck.prompt_tokens;
    rep_.completion_tokens += ck.completion_tokens;
  }

  void record_status(const SoakRequest& r, int status) {
    std::lock_guard lk(mu_);
    ++rep_.by_kind[soak_kind_name(r.kind)];
    ++rep_.by_status[status];
  }

  void worker() {
    SyncHttpClient c(o_.base, o_.api_key,
                     std::chrono::milliseconds(int64_t(o_.request_timeout_s * 1000)));
    for (;;) {
      const int64_t i = next_++;
      if (i >= o_.num_requests) return;
      one(c, uint64_t(i));
      std::lock_guard lk(mu_);
      ++finished_;
    }
  }

  const SoakOptions& o_;
  SoakReport rep_;
  std::atomic<int64_t> next_{0};
  int64_t finished_ = 0;  // under mu_
  int64_t warmup_count_ = 0;
  Clock::time_point t0_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_monitor_ = false;
  std::map<int32_t, std::string> probe_text_;
  std::string rss_source_;
};

}  // namespace

std::optional<double> SoakReport::rss_growth_pct() const {
  if (rss_base <= 0 || rss_end <= 0) return std::nullopt;
  return 100.0 * (rss_end - rss_base) / rss_base;
}

bool SoakReport::passed(const SoakOptions& o) const {
  const auto g = rss_growth_pct();
  return server_errors == 0 && lost == 0 && failed_checks == 0 && probe_mismatches == 0 && idle &&
         (!g || *g <= o.max_rss_growth_pct);
}

std::optional<double> prometheus_value(const std::string& page, const std::string& name) {
  size_t pos = 0;
  while ((pos = page.find(name, pos)) != std::string::npos) {
    const size_t eol = std::min(page.find('\n', pos), page.size());
    const bool line_start = pos == 0 || page[pos - 1] == '\n';
    const size_t after = pos + name.size();
    if (line_start && after < eol && (page[after] == '{' || page[after] == ' ')) {
      const size_t sp = page.rfind(' ', eol);
      try {
        return std::stod(page.substr(sp + 1, eol - sp - 1));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
    pos = eol;
  }
  return std::nullopt;
}

std::string format_soak_report(const SoakReport& r, const SoakOptions& o) {
  std::string s = "================ Soak Result ================\n";
  auto line = [&](const std::string& k, const std::string& v) {
    s += fmt::format("{:<38}{}\n", k, v);
  };
  line("Requests:",
       fmt::format("{} over {} connections (seed {})", r.num_requests, o.concurrency, o.seed));
  line("Duration (s):", fmt::format("{:.1f} ({:.2f} req/s)", r.duration_s,
                                    double(r.num_requests) / std::max(r.duration_s, 1e-9)));
  std::string kinds, statuses;
  for (const auto& [k, n] : r.by_kind)
    kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", k, n);
  for (const auto& [st, n] : r.by_status)
    statuses += fmt::format("{}{}: {}", statuses.empty() ? "" : ", ",
                            st == 0 ? "none" : std::to_string(st), n);
  line("Kinds:", kinds);
  line("Statuses:", statuses);
  line("Answers passing every check:", std::to_string(r.ok));
  line("Aborted mid-stream by the client:", std::to_string(r.aborted));
  line("Hostile bodies refused with a 4xx:", std::to_string(r.hostile_refused));
  line("Shed (429):", std::to_string(r.shed));
  line("Server errors (5xx):", std::to_string(r.server_errors));
  line("Lost (no answer / cut stream):", std::to_string(r.lost));
  line("Failed checks:", std::to_string(r.failed_checks));
  line("Determinism (repeats, mismatches):",
       fmt::format("{}, {}", r.probe_repeats, r.probe_mismatches));
  line("Tokens (prompt, completion):", fmt::format("{}, {}", r.prompt_tokens, r.completion_tokens));
  auto g = [](const std::optional<double>& v) { return v ? fmt::format("{:g}", *v) : "n/a"; };
  line("Gauges after (running, waiting, KV):",
       fmt::format("{}, {}, {} ({} after {:.1f} s)", g(r.running), g(r.waiting), g(r.kv_usage),
                   r.idle ? "idle" : "NOT idle", r.idle_after_s));
  if (const auto gr = r.rss_growth_pct()) {
    line("Server RSS (MiB: base, end, peak):",
         fmt::format("{:.1f}, {:.1f}, {:.1f}", r.rss_base / 1048576.0, r.rss_end / 1048576.0,
                     r.rss_peak / 1048576.0));
    line("RSS growth after warm-up:",
         fmt::format("{:+.2f} % (bound {:g} %; from {})", *gr, o.max_rss_growth_pct, r.rss_source));
  } else {
    line("Server RSS:", "unknown (no process_resident_memory_bytes; pass --server-pid)");
  }
  for (const std::string& f : r.failures) s += "  " + f + "\n";
  s += fmt::format("Result: {}\n", r.passed(o) ? "PASS" : "FAIL");
  s += "=============================================\n";
  return s;
}

SoakReport run_soak(const SoakOptions& opts) {
  if (opts.num_requests <= 0) fail("--num-requests must be positive, got {}", opts.num_requests);
  if (opts.concurrency <= 0) fail("--concurrency must be positive, got {}", opts.concurrency);
  if (opts.mix.max_tokens <= 0) fail("--max-tokens must be positive, got {}", opts.mix.max_tokens);
  const SoakMix& m = opts.mix;
  for (double s : {m.chat_share, m.stream_share, m.abort_share, m.hostile_share, m.slow_share,
                   m.determinism_share})
    if (!(s >= 0 && s <= 1)) fail("soak shares must lie in [0, 1], got {}", s);
  if (m.abort_share + m.hostile_share + m.slow_share + m.determinism_share > 1)
    fail("--abort-share + --hostile-share + --slow-share + --determinism-share exceed 1");
  SoakRun run(opts);
  return run.run();
}

}  // namespace inferd::bench
