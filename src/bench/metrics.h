// Aggregate metrics of one benchmark run, defined as vLLM's benchmark_serving defines them:
//   TTFT: time to the first chunk with generated text;
//   TPOT: per request, (e2e - ttft) / (output_tokens - 1), for requests of 2+ output tokens;
//   ITL:  every gap between successive chunks of every request, pooled;
//   E2E:  request start to the end of the stream.
// Latency statistics cover successful requests only; failures are counted by kind.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/client.h"
#include "bench/stats.h"

namespace inferd::bench {

struct MetricOptions {
  std::vector<double> percentiles{50, 90, 99};
  // Goodput SLOs (a request is good when it meets every one given).
  std::optional<double> slo_ttft_ms;
  std::optional<double> slo_tpot_ms;
  std::optional<double> slo_e2e_ms;
  bool has_slo() const { return slo_ttft_ms || slo_tpot_ms || slo_e2e_ms; }
  // mixed-long: TPOT also summarized apart for short and long prompts (RequestResult::long_prompt).
  bool split_long = false;
};

struct BenchMetrics {
  std::string label;        // e.g. "rate 4"
  double request_rate = 0;  // asked (inf: all at once)
  int32_t max_concurrency = 0;
  int32_t peak_in_flight = 0;
  size_t num_requests = 0;
  size_t completed = 0;
  size_t failed = 0;
  std::map<std::string, size_t> errors;  // kind -> count
  double duration_s = 0;
  int64_t total_input_tokens = 0;
  int64_t total_output_tokens = 0;
  size_t usage_reported = 0;  // requests whose output count came from the server's usage
  // Prefix cache: prompt tokens the server reported as cached, over the prompt tokens of the
  // requests that reported it (usage.prompt_tokens_details.cached_tokens).
  size_t cached_reported = 0;
  int64_t cached_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens of those requests
  std::optional<double> prefix_cache_hit_rate() const;
  double request_throughput = 0;
  double input_throughput = 0;
  double output_throughput = 0;
  double total_throughput = 0;
  std::optional<double> goodput;  // good requests / s when SLOs were given
  size_t good_requests = 0;
  Summary ttft_ms, tpot_ms, itl_ms, e2e_ms;
  // With MetricOptions::split_long: TPOT of the short-prompt and of the long-prompt requests.
  bool split_long = false;
  size_t long_completed = 0;
  Summary short_tpot_ms, long_tpot_ms;
};

BenchMetrics compute_metrics(const RunResult& run, const MetricOptions& opts);

}  // namespace inferd::bench
