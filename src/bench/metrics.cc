#include "bench/metrics.h"

#include <algorithm>

namespace inferd::bench {

std::optional<double> BenchMetrics::prefix_cache_hit_rate() const {
  if (cached_reported == 0 || cached_prompt_tokens <= 0) return std::nullopt;
  return double(cached_tokens) / double(cached_prompt_tokens);
}

BenchMetrics compute_metrics(const RunResult& run, const MetricOptions& opts) {
  BenchMetrics m;
  m.request_rate = run.request_rate;
  m.max_concurrency = run.max_concurrency;
  m.peak_in_flight = run.peak_in_flight;
  m.num_requests = run.requests.size();
  m.duration_s = run.duration_s;
  std::vector<double> ttft, tpot, itl, e2e, short_tpot, long_tpot;
  for (const RequestResult& r : run.requests) {
    if (!r.success) {
      ++m.failed;
      ++m.errors[r.error_kind.empty() ? "unknown" : r.error_kind];
      continue;
    }
    ++m.completed;
    m.total_input_tokens += r.prompt_tokens;
    m.total_output_tokens += r.output_tokens;
    if (r.usage_reported) ++m.usage_reported;
    if (r.cached_tokens >= 0) {
      ++m.cached_reported;
      m.cached_tokens += r.cached_tokens;
      m.cached_prompt_tokens += r.prompt_tokens;
    }
    ttft.push_back(r.ttft_s * 1e3);
    e2e.push_back(r.e2e_s * 1e3);
    const std::optional<double> t = r.tpot_s();
    if (t) tpot.push_back(*t * 1e3);
    if (r.long_prompt) ++m.long_completed;
    if (t) (r.long_prompt ? long_tpot : short_tpot).push_back(*t * 1e3);
    for (double g : r.itl_s) itl.push_back(g * 1e3);
    if (opts.has_slo()) {
      // A single-token request has no TPOT; vLLM counts it as 0 against the SLO.
      const double tpot_ms = t ? *t * 1e3 : 0.0;
      const bool good = (!opts.slo_ttft_ms || r.ttft_s * 1e3 <= *opts.slo_ttft_ms) &&
                        (!opts.slo_tpot_ms || tpot_ms <= *opts.slo_tpot_ms) &&
                        (!opts.slo_e2e_ms || r.e2e_s * 1e3 <= *opts.slo_e2e_ms);
      if (good) ++m.good_requests;
    }
  }
  const double d = std::max(run.duration_s, 1e-9);
  m.request_throughput = double(m.completed) / d;
  m.input_throughput = double(m.total_input_tokens) / d;
  m.output_throughput = double(m.total_output_tokens) / d;
  m.total_throughput = double(m.total_input_tokens + m.total_output_tokens) / d;
  if (opts.has_slo()) m.goodput = double(m.good_requests) / d;
  m.ttft_ms = summarize(ttft, opts.percentiles);
  m.tpot_ms = summarize(tpot, opts.percentiles);
  m.itl_ms = summarize(itl, opts.percentiles);
  m.e2e_ms = summarize(e2e, opts.percentiles);
  m.split_long = opts.split_long;
  if (m.split_long) {
    m.short_tpot_ms = summarize(short_tpot, opts.percentiles);
    m.long_tpot_ms = summarize(long_tpot, opts.percentiles);
  }
  return m;
}

}  // namespace inferd::bench
