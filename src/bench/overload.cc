// `inferd bench overload` (see overload.h): the ramp and the burst are `bench serve` runs
// (client.h); a probe thread measures recovery and a monitor thread the server's RSS (/metrics).
#include "bench/overload.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "bench/http_util.h"
#include "bench/soak.h"
#include "bench/sse.h"
#include "bench/stats.h"
#include "core/error.h"

namespace inferd::bench {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<BenchRequest> cycle(const std::vector<BenchRequest>& pool, size_t n, size_t offset) {
  std::vector<BenchRequest> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(pool[(offset + i) % pool.size()]);
  return out;
}

// Samples the server's process_resident_memory_bytes every second until stopped.
class RssMonitor {
 public:
  explicit RssMonitor(const OverloadOptions& o) : o_(o) {
    thread_ = std::thread([this] { loop(); });
  }
  ~RssMonitor() { stop(); }
  void stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  double sample() {
    try {
      const HttpResult m = client_.get("/metrics");
      if (m.status == 200)
        if (auto v = prometheus_value(m.body, "process_resident_memory_bytes")) return *v;
    } catch (const Error&) {
    }
    return 0;
  }
  double peak() {
    std::lock_guard lk(mu_);
    return peak_;
  }

 private:
  void loop() {
    SyncHttpClient c(o_.serve.base, o_.serve.api_key, std::chrono::seconds(10));
    std::unique_lock lk(mu_);
    while (!stop_) {
      lk.unlock();
      double v = 0;
      try {
        const HttpResult m = c.get("/metrics");
        if (m.status == 200)
          v = prometheus_value(m.body, "process_resident_memory_bytes").value_or(0);
      } catch (const Error&) {
      }
      lk.lock();
      peak_ = std::max(peak_, v);
      cv_.wait_for(lk, std::chrono::seconds(1));
    }
  }
  const OverloadOptions& o_;
  SyncHttpClient client_{o_.serve.base, o_.serve.api_key, std::chrono::seconds(10)};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  double peak_ = 0;
  std::thread thread_;
};

// One probe: a streamed request closed at its first generated text; its TTFT in seconds, or
// nullopt when it was refused or failed.
std::optional<double> probe_ttft(SyncHttpClient& c, const OverloadOptions& o) {
  const std::string body = build_request_body(o.serve, o.pool.front());
  const Clock::time_point t = Clock::now();
  std::optional<double> ttft;
  SseParser sse;
  try {
    const auto res = c.post_stream(
        o.serve.endpoint, body,
        [&](std::string_view d) {
          sse.feed(d, [&](std::string_view, std::string_view data) {
            if (ttft || data == "[DONE]") return;
            if (data.find("\"text\":\"") != std::string_view::npos &&
                data.find("\"text\":\"\"") == std::string_view::npos)
              ttft = since(t);
            if (data.find("\"content\":\"") != std::string_view::npos &&
                data.find("\"content\":\"\"") == std::string_view::npos)
              ttft = since(t);
          });
        },
        [&] { return ttft.has_value(); });
    if (res.status != 200) return std::nullopt;
  } catch (const Error&) {
    return std::nullopt;
  }
  return ttft;
}

void ramp(const OverloadOptions& o, OverloadReport& rep) {
  size_t offset = 0;
  double prev_goodput = 0;
  for (double rate : o.ramp_rates) {
    const size_t n = std::max<size_t>(10, size_t(std::ceil(rate * o.step_s)));
    ServeOptions so = o.serve;
    so.request_rate = rate;
    so.progress_label = fmt::format("ramp {} ", rate);
    const RunResult run = run_serving(so, cycle(o.pool, n, offset));
    offset += n;
    OverloadStep s =
        summarize_step(fmt::format("ramp {:g}", rate), rate, run, o.step_s, o.slo_ttft_ms);
    std::fprintf(stderr,
                 "ramp %g req/s: %zu requests, %zu ok, %zu shed, TTFT p99 %.0f ms, goodput "
                 "%.2f req/s\n",
                 rate, s.requests, s.ok, s.shed, s.ttft_p99_ms, s.goodput);
    const bool good = s.ttft_p99_ms <= o.slo_ttft_ms && s.shed_share() < 0.01 &&
                      s.server_errors == 0 && s.goodput >= 1.05 * prev_goodput;
    rep.ramp.push_back(s);
    if (!good) break;
    rep.sustainable = rate;
    rep.ttft_p99_1x_ms = s.ttft_p99_ms;
    prev_goodput = s.goodput;
  }
}

// The burst, with the probes sent from the end of its arrivals.
void burst(const OverloadOptions& o, OverloadReport& rep) {
  const double rate = o.factor * *rep.sustainable;
  const size_t n = std::max<size_t>(10, size_t(std::ceil(rate * o.burst_s)));
  ServeOptions so = o.serve;
  so.request_rate = rate;
  so.progress_label = "burst ";
  struct Probe {
    double start_s, ttft_s;  // since the burst began; ttft_s < 0: refused
  };
  std::vector<Probe> probes;
  const Clock::time_point t0 = Clock::now();
  std::atomic<bool> burst_done{false};
  std::thread prober([&] {
    SyncHttpClient c(o.serve.base, o.serve.api_key, std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::duration<double>(o.burst_s));
    const double normal_s = rep.ttft_p99_1x_ms / 1e3;
    for (;;) {
      const double start = since(t0);
      const std::optional<double> t = probe_ttft(c, o);
      probes.push_back({start, t.value_or(-1)});
      if (t && *t <= normal_s && burst_done) break;
      if (since(t0) > o.burst_s + 120) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(o.probe_interval_s));
    }
  });
  const RunResult run = run_serving(so, cycle(o.pool, n, 7919));
  burst_done = true;
  prober.join();
  double arrivals_end = 0;
  for (const RequestResult& r : run.requests) arrivals_end = std::max(arrivals_end, r.start_s);
  rep.burst =
      summarize_step(fmt::format("burst {:g}x", o.factor), rate, run, o.burst_s, o.slo_ttft_ms);
  rep.probes = probes.size();
  // The first probe whose TTFT was normal after which no later probe was refused or slow.
  const double normal_s = rep.ttft_p99_1x_ms / 1e3;
  for (size_t i = probes.size(); i-- > 0;) {
    if (probes[i].ttft_s < 0 || probes[i].ttft_s > normal_s) break;
    rep.recovery_s = std::max(0.0, probes[i].start_s + probes[i].ttft_s - arrivals_end);
  }
}

void judge(const OverloadOptions& o, OverloadReport& rep) {
  auto& p = rep.problems;
  if (!rep.sustainable) {
    p.push_back(
        fmt::format("no ramp rate was sustainable (TTFT p99 <= {} ms, < 1 % shed)", o.slo_ttft_ms));
    return;
  }
  const OverloadStep& b = *rep.burst;
  if (b.shed == 0) p.push_back("the burst was not shed (no 429): the ramp stopped too early");
  if (b.shed_without_retry_after)
    p.push_back(fmt::format("{} 429s without Retry-After", b.shed_without_retry_after));
  if (b.server_errors) p.push_back(fmt::format("{} server errors (5xx)", b.server_errors));
  if (b.other_failures)
    p.push_back(
        fmt::format("{} admitted requests failed (timeout, disconnect, ...)", b.other_failures));
  if (b.ttft_p99_ms > o.ttft_factor * rep.ttft_p99_1x_ms)
    p.push_back(fmt::format("admitted TTFT p99 {:.0f} ms > {:g} x {:.0f} ms at 1x", b.ttft_p99_ms,
                            o.ttft_factor, rep.ttft_p99_1x_ms));
  if (!rep.recovery_s || *rep.recovery_s > o.recovery_bound_s)
    p.push_back(rep.recovery_s ? fmt::format("recovery took {:.1f} s (bound {:g} s)",
                                             *rep.recovery_s, o.recovery_bound_s)
                               : std::string("the probe's TTFT never came back to normal"));
  if (rep.rss_before > 0 && rep.rss_peak > rep.rss_before * (1 + o.max_rss_growth_pct / 100))
    p.push_back(fmt::format("RSS peak {:.1f} MiB over {:.1f} MiB before by more than {:g} %",
                            rep.rss_peak / 1048576.0, rep.rss_before / 1048576.0,
                            o.max_rss_growth_pct));
}

}  // namespace

OverloadStep summarize_step(const std::string& label, double rate, const RunResult& run,
                            double window_s, double slo_ttft_ms) {
  OverloadStep s;
  s.label = label;
  s.rate = rate;
  s.requests = run.requests.size();
  std::vector<double> ttft;
  size_t good = 0;
  for (const RequestResult& r : run.requests) {
    if (r.success) {
      ++s.ok;
      ttft.push_back(r.ttft_s * 1e3);
      good += r.ttft_s * 1e3 <= slo_ttft_ms;
    } else if (r.http_status == 429) {
      ++s.shed;
      s.shed_without_retry_after += r.retry_after.empty();
    } else if (r.http_status >= 500) {
      ++s.server_errors;
    } else {
      ++s.other_failures;
    }
  }
  s.ttft_p50_ms = percentile(ttft, 50);
  s.ttft_p99_ms = percentile(ttft, 99);
  s.goodput = double(good) / std::max(window_s, 1e-9);
  return s;
}

OverloadReport run_overload(const OverloadOptions& o) {
  if (o.pool.empty()) fail("bench overload: no requests to send");
  if (o.ramp_rates.empty()) fail("--ramp-rates: give at least one rate");
  for (size_t i = 1; i < o.ramp_rates.size(); ++i)
    if (!(o.ramp_rates[i] > o.ramp_rates[i - 1])) fail("--ramp-rates must be ascending");
  if (!(o.factor > 1)) fail("--factor must be above 1, got {}", o.factor);
  if (!(o.step_s > 0) || !(o.burst_s > 0)) fail("--step-duration and --burst-duration must be > 0");
  OverloadReport rep;
  RssMonitor rss(o);
  rep.rss_before = rss.sample();
  ramp(o, rep);
  if (rep.sustainable) burst(o, rep);
  rep.rss_peak = rss.peak();
  rss.stop();
  rep.rss_after = rss.sample();
  rep.rss_peak = std::max(rep.rss_peak, rep.rss_after);
  judge(o, rep);
  return rep;
}

std::string format_overload_report(const OverloadReport& r, const OverloadOptions& o) {
  std::string s = "================ Overload Result ================\n";
  s += fmt::format("{:<12}{:>10}{:>10}{:>8}{:>10}{:>14}{:>14}{:>14}\n", "step", "req/s", "sent",
                   "ok", "429 %", "goodput/s", "TTFT p50 ms", "TTFT p99 ms");
  auto row = [&](const OverloadStep& st) {
    s += fmt::format("{:<12}{:>10.2f}{:>10}{:>8}{:>10.1f}{:>14.2f}{:>14.0f}{:>14.0f}\n", st.label,
                     st.rate, st.requests, st.ok, 100.0 * st.shed_share(), st.goodput,
                     st.ttft_p50_ms, st.ttft_p99_ms);
  };
  for (const OverloadStep& st : r.ramp) row(st);
  if (r.burst) row(*r.burst);
  s += fmt::format("Goodput: requests/s with TTFT <= {:g} ms over the arrival window\n",
                   o.slo_ttft_ms);
  if (r.sustainable)
    s += fmt::format("Sustainable rate: {:g} req/s (TTFT p99 {:.0f} ms)\n", *r.sustainable,
                     r.ttft_p99_1x_ms);
  if (r.burst)
    s += fmt::format(
        "Burst at {:g}x: {} shed with 429 ({} without Retry-After), admitted TTFT p99 {:.0f} ms "
        "(bound {:g} x {:.0f} = {:.0f} ms), {} 5xx\n",
        o.factor, r.burst->shed, r.burst->shed_without_retry_after, r.burst->ttft_p99_ms,
        o.ttft_factor, r.ttft_p99_1x_ms, o.ttft_factor * r.ttft_p99_1x_ms, r.burst->server_errors);
  s += r.recovery_s ? fmt::format("Recovery: {:.2f} s after the burst's last arrival ({} probes)\n",
                                  *r.recovery_s, r.probes)
                    : fmt::format("Recovery: not seen ({} probes)\n", r.probes);
  if (r.rss_before > 0)
    s += fmt::format("Server RSS MiB: before {:.1f}, peak {:.1f}, after {:.1f}\n",
                     r.rss_before / 1048576.0, r.rss_peak / 1048576.0, r.rss_after / 1048576.0);
  for (const std::string& p : r.problems) s += "  " + p + "\n";
  s += fmt::format("Result: {}\n", r.passed() ? "PASS" : "FAIL");
  s += "=================================================\n";
  return s;
}

}  // namespace inferd::bench
