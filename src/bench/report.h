// Benchmark output: the terminal table, the JSON file (every per-request measurement) and the SVG
// plot of latency percentiles against throughput (written by hand; any browser shows it).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bench/client.h"
#include "bench/metrics.h"

namespace inferd::bench {

// The readable result of one run.
std::string format_report(const BenchMetrics& m, const MetricOptions& opts);
// One line per run of a sweep.
std::string format_sweep_table(const std::vector<BenchMetrics>& runs, const MetricOptions& opts);

nlohmann::json metrics_to_json(const BenchMetrics& m);
// One run: its metrics and every request (times in milliseconds).
nlohmann::json run_to_json(const RunResult& run, const BenchMetrics& m);

// Three panels (TTFT, TPOT, E2E latency in ms) against output token throughput, one line per
// percentile, one point per run (labelled with its request rate).
std::string render_sweep_svg(const std::vector<BenchMetrics>& runs, const MetricOptions& opts,
                             const std::string& title);

// Writes `text` to `path`; throws Error when it cannot.
void write_text_file(const std::string& path, const std::string& text);

// "inf" or the number without trailing zeros.
std::string format_rate(double rate);

}  // namespace inferd::bench
