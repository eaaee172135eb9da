#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace inferd::server {

namespace {

void head(std::string& out, const std::string& name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Token-count buckets as vLLM builds them: 1, 2, 5 x powers of ten up to the limit.
std::vector<double> token_buckets(double max) {
  std::vector<double> b;
  for (double e = 1; e <= max; e *= 10)
    for (double m : {1.0, 2.0, 5.0})
      if (m * e <= max) b.push_back(m * e);
  return b;
}

}  // namespace

std::string prom_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::abs(v) < 1e15) return fmt::format("{:.1f}", v);
  return fmt::format("{}", v);
}

std::string prom_label(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

Histogram::Histogram(std::vector<double> buckets)
    : bounds_(std::move(buckets)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    const std::string le = i < bounds_.size() ? prom_number(bounds_[i]) : "+Inf";
    out +=
        fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, le, prom_number(double(cum)));
  }
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, prom_number(sum_));
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, prom_number(double(count_)));
}

Metrics::Metrics(std::string model_name)
    : model_name_(std::move(model_name)),
      ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
             1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}),
      tpot_({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
             10.0, 20.0, 40.0, 80.0}),
      e2e_({0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
            30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}),
      prompt_hist_(token_buckets(1 << 20)),
      gen_hist_(token_buckets(1 << 20)) {
  for (const char* r : {"stop", "length", "abort"}) success_by_reason_[r] = 0;
}

void Metrics::record_request(const RequestRecord& r) {
  std::lock_guard lk(mu_);
  prompt_tokens_ += r.prompt_tokens;
  generation_tokens_ += r.generation_tokens;
  for (FinishReason f : r.finish_reasons) success_by_reason_[to_string(f)]++;
  if (r.ttft_s >= 0) ttft_.observe(r.ttft_s);
  if (r.tpot_s >= 0) tpot_.observe(r.tpot_s);
  e2e_.observe(r.e2e_s);
  prompt_hist_.observe(double(r.prompt_tokens));
  gen_hist_.observe(double(r.generation_tokens));
}

void Metrics::record_http(const std::string& handler, const std::string& method, int status) {
  std::lock_guard lk(mu_);
  http_[{handler, method, status}]++;
}

std::string Metrics::render(const EngineStats& s) const {
  std::lock_guard lk(mu_);
  const std::string ml = fmt::format("model_name=\"{}\"", prom_label(model_name_));
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    head(out, name, "gauge", help);
    out += fmt::format("{}{{{}}} {}\n", name, ml, prom_number(v));
  };
  auto counter = [&](const std::string& base, const char* help, double v) {
    head(out, base, "counter", help);
    out += fmt::format("{}_total{{{}}} {}\n", base, ml, prom_number(v));
  };
  gauge("inferd:num_requests_running", "Number of sequences in model execution batches.",
        s.num_running);
  gauge("inferd:num_requests_waiting", "Number of sequences waiting to be processed.",
        s.num_waiting);
  gauge("inferd:kv_cache_usage_perc",
        "KV-cache usage: the fraction of blocks held by live requests (1 = 100 percent).",
        s.blocks_total > 0 ? double(s.blocks_used) / double(s.blocks_total) : 0.0);
  gauge("inferd:kv_cache_blocks_total", "KV-cache blocks in the pool.", s.blocks_total);
  gauge("inferd:kv_cache_blocks_used", "KV-cache blocks referenced by live sequences.",
        s.blocks_used);
  gauge("inferd:kv_cache_blocks_cached",
        "KV-cache blocks that nothing references but that hold a reusable prefix.",
        s.blocks_cached);
  counter("inferd:prefix_cache_queries", "Prefix-cache queries, in tokens.",
          double(s.prefix_cache_queries));
  counter("inferd:prefix_cache_hits", "Prefix-cache hits, in tokens.", double(s.prefix_cache_hits));
  counter("inferd:num_preemptions", "Cumulative number of preemptions.", double(s.preemptions));
  counter("inferd:prompt_tokens", "Number of prefill tokens processed.", double(prompt_tokens_));
  counter("inferd:generation_tokens", "Number of generation tokens processed.",
          double(generation_tokens_));
  head(out, "inferd:request_success", "counter",
       "Count of successfully processed sequences, by finish reason.");
  for (const auto& [reason, n] : success_by_reason_)
    out += fmt::format("inferd:request_success_total{{finished_reason=\"{}\",{}}} {}\n", reason, ml,
                       prom_number(double(n)));
  head(out, "inferd:time_to_first_token_seconds", "histogram",
       "Histogram of time to first token in seconds.");
  ttft_.render(out, "inferd:time_to_first_token_seconds", ml);
  head(out, "inferd:time_per_output_token_seconds", "histogram",
       "Histogram of time per output token in seconds (mean over each request).");
  tpot_.render(out, "inferd:time_per_output_token_seconds", ml);
  head(out, "inferd:e2e_request_latency_seconds", "histogram",
       "Histogram of end to end request latency in seconds.");
  e2e_.render(out, "inferd:e2e_request_latency_seconds", ml);
  head(out, "inferd:request_prompt_tokens", "histogram", "Number of prefill tokens processed.");
  prompt_hist_.render(out, "inferd:request_prompt_tokens", ml);
  head(out, "inferd:request_generation_tokens", "histogram",
       "Number of generation tokens processed.");
  gen_hist_.render(out, "inferd:request_generation_tokens", ml);
  head(out, "inferd:http_requests", "counter", "HTTP requests by handler, method and status.");
  for (const auto& [key, n] : http_) {
    const auto& [h, m, st] = key;
    out +=
        fmt::format("inferd:http_requests_total{{handler=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                    prom_label(h), prom_label(m), st, prom_number(double(n)));
  }
  return out;
}

}  // namespace inferd::server
