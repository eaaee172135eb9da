// `inferd bench soak`: N randomised requests (soak_request.h) from C connections against a
// running OpenAI-compatible server, every answer checked (soak_check.h); at the end the server's
// gauges (running, waiting, KV usage) must drop to 0 and its resident memory must not have grown
// past a bound. One summary; `passed()` is what the command's exit status reports.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/http_util.h"
#include "bench/soak_request.h"

namespace inferd::bench {

struct SoakOptions {
  Url base;
  std::string api_key;
  std::string model;
  int64_t num_requests = 1000;
  int32_t concurrency = 8;  // connections, each one request at a time
  uint64_t seed = 0;
  SoakMix mix;
  double request_timeout_s = 300;
  // The resident-memory baseline is taken once this share of the requests has finished (the
  // allocator's and caches' first growth is not a leak); growth is measured from it to the end.
  double warmup_share = 0.1;
  double max_rss_growth_pct = 5.0;
  double idle_timeout_s = 30;  // time the gauges may take to drop to 0 after the last answer
  // RSS from /proc/<pid>/statm (a server on this machine) where /metrics lacks
  // process_resident_memory_bytes; 0: /metrics only.
  int32_t server_pid = 0;
  bool progress = true;
  size_t max_failures_listed = 20;
};

struct SoakReport {
  int64_t num_requests = 0;
  double duration_s = 0;
  std::map<std::string, int64_t> by_kind;  // soak_kind_name -> requests
  std::map<int, int64_t> by_status;        // HTTP status -> answers (0: no answer)
  int64_t ok = 0;                          // answers that passed every check
  int64_t server_errors = 0;               // 5xx
  int64_t lost = 0;                        // no answer, or a stream cut without an abort
  int64_t failed_checks = 0;               // wrong status or shape, usage sums, constraints...
  int64_t shed = 0;                        // 429s to valid requests (not failures)
  int64_t aborted = 0;                     // streams the client closed mid-way
  int64_t hostile_refused = 0;             // hostile bodies answered with a 4xx
  int64_t probe_repeats = 0;               // determinism: answers compared with the first one
  int64_t probe_mismatches = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::vector<std::string> failures;  // the first max_failures_listed messages
  // The server after the run (nullopt: not exported).
  std::optional<double> running, waiting, kv_usage;
  bool idle = false;
  double idle_after_s = 0;  // time from the last answer until the gauges read 0
  // Resident memory (bytes; 0: unknown) and where it was read.
  double rss_base = 0, rss_end = 0, rss_peak = 0;
  std::string rss_source;
  std::optional<double> rss_growth_pct() const;
  bool passed(const SoakOptions& o) const;
};

SoakReport run_soak(const SoakOptions& opts);
std::string format_soak_report(const SoakReport& r, const SoakOptions& opts);

// The value of the first sample of `name` (`name{labels} value` or `name value`) on a Prometheus
// text page.
std::optional<double> prometheus_value(const std::string& page, const std::string& name);

}  // namespace inferd::bench
