// Prometheus metrics in the text exposition format, named as vLLM names them with an `inferd:`
// prefix (vllm:num_requests_running -> inferd:num_requests_running, ...).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "inferd/engine.h"

namespace inferd::server {

// A sample value and a label value as the Prometheus text format writes them (shared with the
// router's /metrics).
std::string prom_number(double v);
std::string prom_label(const std::string& s);

class Histogram {
 public:
  explicit Histogram(std::vector<double> buckets);
  void observe(double v);
  // Appends the _bucket/_sum/_count lines.
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// What one finished request contributes.
struct RequestRecord {
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  std::vector<FinishReason> finish_reasons;  // one per sequence
  double ttft_s = -1;                        // < 0: no token was produced
  double tpot_s = -1;                        // < 0: fewer than two tokens
  double e2e_s = 0;
};

class Metrics {
 public:
  explicit Metrics(std::string model_name);

  void record_request(const RequestRecord& r);
  void record_http(const std::string& handler, const std::string& method, int status);

  // The whole /metrics page. Gauges and engine counters come from `stats`.
  std::string render(const EngineStats& stats) const;

 private:
  std::string model_name_;
  mutable std::mutex mu_;
  int64_t prompt_tokens_ = 0;
  int64_t generation_tokens_ = 0;
  std::map<std::string, int64_t> success_by_reason_;
  std::map<std::tuple<std::string, std::string, int>, int64_t> http_;
  Histogram ttft_;
  Histogram tpot_;
  Histogram e2e_;
  Histogram prompt_hist_;
  Histogram gen_hist_;
};

}  // namespace inferd::server
