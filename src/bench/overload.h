// `inferd bench overload`: finds the sustainable request rate of a running server by a ramp of
// `bench serve` runs (Poisson arrivals), then sends `factor` times that rate for a while and
// checks that the server sheds what it cannot serve (429 with Retry-After), that the requests it
// admits keep their TTFT p99 within `ttft_factor` times the value at the sustainable rate, that
// its resident memory stays bounded, and that after the burst a probe request's TTFT is back to
// normal within `recovery_bound_s`.
//
// Sustainable: the highest ramp rate whose TTFT p99 meets --slo-ttft-ms, that shed under 1 % of
// its requests, and whose goodput (requests/s meeting the SLO, over the arrival window) still rose
// by at least 5 % over the previous step's; the ramp stops at the first step that misses one.
// Recovery: from the end of the burst's arrivals, one probe at a time (every probe_interval_s)
// until a probe's TTFT is at most the TTFT p99 at the sustainable rate.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bench/client.h"
#include "bench/dataset.h"
#include "bench/metrics.h"

namespace inferd::bench {

struct OverloadOptions {
  ServeOptions serve;              // base, endpoint, model, key, output forcing, timeout
  std::vector<BenchRequest> pool;  // request shapes, cycled
  std::vector<double> ramp_rates;  // ascending requests/s
  double step_s = 20;              // seconds of arrivals per ramp step
  double slo_ttft_ms = 1000;       // TTFT p99 bound of a sustainable step
  double factor = 2.0;             // burst rate = factor x sustainable
  double burst_s = 30;             // seconds of arrivals at the burst rate
  double ttft_factor = 2.0;        // admitted TTFT p99 bound = this x the value at 1x
  double recovery_bound_s = 5;     // the probe's TTFT must be normal again within this
  double probe_interval_s = 0.25;
  double max_rss_growth_pct = 10;  // peak RSS during the burst over RSS before the ramp
  bool progress = false;
};

struct OverloadStep {
  std::string label;  // "ramp 4", "burst 2x"
  double rate = 0;
  size_t requests = 0;
  size_t ok = 0;
  size_t shed = 0;  // 429s
  size_t shed_without_retry_after = 0;
  size_t server_errors = 0;  // 5xx
  size_t other_failures = 0;
  double ttft_p50_ms = 0, ttft_p99_ms = 0;
  double goodput = 0;  // requests/s meeting the TTFT SLO, over the arrival window
  double shed_share() const { return requests ? double(shed) / double(requests) : 0; }
};

struct OverloadReport {
  std::vector<OverloadStep> ramp;
  std::optional<double> sustainable;  // nullopt: not even the first ramp rate was
  double ttft_p99_1x_ms = 0;
  std::optional<OverloadStep> burst;
  std::optional<double> recovery_s;  // nullopt: the probe never became normal
  size_t probes = 0;
  double rss_before = 0, rss_peak = 0, rss_after = 0;  // bytes; 0: unknown
  std::vector<std::string> problems;                   // why it failed; empty: passed
  bool passed() const { return problems.empty(); }
};

OverloadReport run_overload(const OverloadOptions& opts);
std::string format_overload_report(const OverloadReport& r, const OverloadOptions& opts);

// One step's figures from a `bench serve` run (arrival window `window_s`, TTFT SLO in ms).
OverloadStep summarize_step(const std::string& label, double rate, const RunResult& run,
                            double window_s, double slo_ttft_ms);

}  // namespace inferd::bench
