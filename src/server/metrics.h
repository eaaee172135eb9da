// Prometheus metrics in the text exposition format. Every quantity vLLM measures is served under
// vLLM's own name and labels (`vllm:num_requests_waiting{model_name="...",engine="0"}`, ...) and
// only there: dashboards, KEDA / HPA rules and gateway schedulers written for vLLM read inferd
// unchanged, and no quantity is exported twice under two names that could drift apart. What vLLM
// has no name for keeps the `inferd:` prefix (http_requests_total, kv_cache_blocks_*). The names,
// help texts and histogram buckets follow vLLM's v1 PrometheusStatLogger (vllm/v1/metrics/
// loggers.py); docs/api.md lists them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "inferd/engine.h"
#include "inferd/lora.h"

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

// What one finished HTTP request (one or more prompts, n choices each) contributes.
struct RequestRecord {
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  std::vector<FinishReason> finish_reasons;  // one per sequence
  double ttft_s = -1;                        // < 0: no token was produced
  double tpot_s = -1;                        // < 0: fewer than two tokens
  double e2e_s = 0;
  int32_t n = 1;                      // the request's n
  std::optional<int32_t> max_tokens;  // the request's max_tokens, when it had one
  // The engine's timings of each prompt (engine request), from its finished output.
  std::vector<RequestTimes> engine_times;
};

class Metrics {
 public:
  // `max_model_len` bounds the token-count buckets (1, 2, 5 x 10^k up to it, as vLLM builds
  // them). `cache_info`: the labels of vllm:cache_config_info (none: not served).
  explicit Metrics(std::string model_name, int32_t max_model_len = 1 << 20,
                   std::vector<std::pair<std::string, std::string>> cache_info = {});

  void record_request(const RequestRecord& r);
  // The time between two outputs of one engine request that brought tokens (vLLM's
  // inter_token_latency_seconds), observed as they arrive.
  void record_inter_token(double seconds);
  void record_http(const std::string& handler, const std::string& method, int status);

  // LoRA (issue 29): vllm:lora_requests_info names the adapters of EngineStats' ids.
  void set_lora(std::shared_ptr<LoraAdapters> lora) { lora_ = std::move(lora); }

  // The whole /metrics page. Gauges and engine counters come from `stats`.
  std::string render(const EngineStats& stats) const;

 private:
  void render_engine(std::string& out, const EngineStats& s) const;
  void render_spec_decode(std::string& out, const EngineStats& s) const;
  void render_requests(std::string& out) const;

  std::string model_name_;
  std::string labels_;  // model_name="...",engine="0"
  std::vector<std::pair<std::string, std::string>> cache_info_;
  std::shared_ptr<LoraAdapters> lora_;
  mutable std::mutex mu_;
  int64_t prompt_tokens_ = 0;
  int64_t generation_tokens_ = 0;
  std::map<std::string, int64_t> success_by_reason_;
  std::map<std::tuple<std::string, std::string, int>, int64_t> http_;
  Histogram ttft_;
  Histogram itl_;
  Histogram tpot_;
  Histogram e2e_;
  Histogram queue_;
  Histogram prefill_;
  Histogram decode_;
  Histogram inference_;
  Histogram prompt_hist_;
  Histogram gen_hist_;
  Histogram params_n_;
  Histogram params_max_tokens_;
};

}  // namespace inferd::server
