#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <unistd.h>

namespace inferd::server {

namespace {

// The process's resident set in bytes (/proc/self/statm's second field); 0 where unreadable.
double resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return got == 2 ? double(resident) * double(sysconf(_SC_PAGESIZE)) : 0.0;
}

void head(std::string& out, const std::string& name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Token-count buckets as vLLM builds them: 1, 2, 5 x powers of ten up to the limit (its
// build_1_2_5_buckets(max_model_len)).
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

namespace {

const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
// Inter-token latency and the per-request time per output token.
const std::vector<double> kTokenLatencyBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                  0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                                  7.5,  10.0,  20.0, 40.0,  80.0};
// End to end, queue, prefill, decode and inference times.
const std::vector<double> kRequestLatencyBuckets = {
    0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const std::vector<double> kParamsNBuckets = {1, 2, 5, 10, 20};

double span_s(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Metrics::Metrics(std::string model_name, int32_t max_model_len,
                 std::vector<std::pair<std::string, std::string>> cache_info)
    : model_name_(std::move(model_name)),
      labels_(fmt::format("model_name=\"{}\",engine=\"0\"", prom_label(model_name_))),
      cache_info_(std::move(cache_info)),
      ttft_(kTtftBuckets),
      itl_(kTokenLatencyBuckets),
      tpot_(kTokenLatencyBuckets),
      e2e_(kRequestLatencyBuckets),
      queue_(kRequestLatencyBuckets),
      prefill_(kRequestLatencyBuckets),
      decode_(kRequestLatencyBuckets),
      inference_(kRequestLatencyBuckets),
      prompt_hist_(token_buckets(std::max(1, max_model_len))),
      gen_hist_(token_buckets(std::max(1, max_model_len))),
      params_n_(kParamsNBuckets),
      params_max_tokens_(token_buckets(std::max(1, max_model_len))) {
  for (const char* r : {"stop", "length", "abort"}) success_by_reason_[r] = 0;
}

void Metrics::record_request(const RequestRecord& r) {
  using TimePoint = std::chrono::steady_clock::time_point;
  std::lock_guard lk(mu_);
  prompt_tokens_ += r.prompt_tokens;
  generation_tokens_ += r.generation_tokens;
  for (FinishReason f : r.finish_reasons) success_by_reason_[to_string(f)]++;
  if (r.ttft_s >= 0) ttft_.observe(r.ttft_s);
  if (r.tpot_s >= 0) tpot_.observe(r.tpot_s);
  e2e_.observe(r.e2e_s);
  prompt_hist_.observe(double(r.prompt_tokens));
  gen_hist_.observe(double(r.generation_tokens));
  params_n_.observe(double(r.n));
  if (r.max_tokens) params_max_tokens_.observe(double(*r.max_tokens));
  // As vLLM: queue = first scheduled - arrival, prefill = first token - first scheduled, decode =
  // last token - first token, inference = prefill + decode; a phase that never began is skipped.
  for (const RequestTimes& t : r.engine_times) {
    if (t.first_scheduled == TimePoint{}) continue;
    queue_.observe(span_s(t.arrival, t.first_scheduled));
    if (t.first_token == TimePoint{}) continue;
    prefill_.observe(span_s(t.first_scheduled, t.first_token));
    decode_.observe(span_s(t.first_token, t.last_token));
    inference_.observe(span_s(t.first_scheduled, t.last_token));
  }
}

void Metrics::record_inter_token(double seconds) {
  std::lock_guard lk(mu_);
  itl_.observe(seconds);
}

void Metrics::record_http(const std::string& handler, const std::string& method, int status) {
  std::lock_guard lk(mu_);
  http_[{handler, method, status}]++;
}

// Gauges and counters the engine keeps, and the steps' token counts.
void Metrics::render_engine(std::string& out, const EngineStats& s) const {
  const std::string& ml = labels_;
  auto gauge = [&](const char* name, const char* help, double v) {
    head(out, name, "gauge", help);
    out += fmt::format("{}{{{}}} {}\n", name, ml, prom_number(v));
  };
  auto counter = [&](const std::string& base, const char* help, double v) {
    head(out, base, "counter", help);
    out += fmt::format("{}_total{{{}}} {}\n", base, ml, prom_number(v));
  };
  gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
        s.num_running);
  gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", s.num_waiting);
  gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
        s.blocks_total > 0 ? double(s.blocks_used) / double(s.blocks_total) : 0.0);
  counter("vllm:prefix_cache_queries",
          "Prefix cache queries, in terms of number of queried tokens.",
          double(s.prefix_cache_queries));
  counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
          double(s.prefix_cache_hits));
  counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
          double(s.preemptions));
  // vllm:iteration_tokens_total: vLLM's buckets are powers of two, so the engine's log2 counts
  // give them exactly (tokens per step = tokens in the step's forward).
  const char* it = "vllm:iteration_tokens_total";
  head(out, it, "histogram", "Histogram of number of tokens per engine_step.");
  int64_t cum = 0;
  size_t next = 0;
  for (size_t k : {0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}) {
    for (; next <= k; ++next) cum += s.steps_by_tokens_log2[next];
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", it, ml, prom_number(double(1 << k)),
                       prom_number(double(cum)));
  }
  out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", it, ml, prom_number(double(s.num_steps)));
  out += fmt::format("{}_sum{{{}}} {}\n", it, ml, prom_number(double(s.tokens_computed)));
  out += fmt::format("{}_count{{{}}} {}\n", it, ml, prom_number(double(s.num_steps)));
  if (s.spec_num_speculative_tokens > 0) render_spec_decode(out, s);
  if (!cache_info_.empty()) {
    head(out, "vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
    std::string labels;
    for (const auto& [k, v] : cache_info_) labels += fmt::format("{}=\"{}\",", k, prom_label(v));
    out += fmt::format("vllm:cache_config_info{{{}engine=\"0\"}} 1.0\n", labels);
  }
  if (lora_) {
    // vLLM's: the adapters with running and with waiting requests, comma-separated, as labels;
    // the value is the time of the snapshot.
    const std::vector<LoraAdapterInfo> all = lora_->list();
    auto names = [&](const std::vector<int32_t>& ids) {
      std::string out;
      for (int32_t id : ids)
        for (const auto& a : all)
          if (a.id == id) out += (out.empty() ? "" : ",") + a.name;
      return prom_label(out);
    };
    head(out, "vllm:lora_requests_info", "gauge", "Running stats on lora requests.");
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    out += fmt::format(
        "vllm:lora_requests_info{{max_lora=\"{}\",running_lora_adapters=\"{}\","
        "waiting_lora_adapters=\"{}\"}} {}\n",
        lora_->max_loras(), names(s.lora_running), names(s.lora_waiting), prom_number(now));
  }
  gauge("inferd:kv_cache_blocks_total", "KV-cache blocks in the pool.", s.blocks_total);
  gauge("inferd:kv_cache_blocks_used", "KV-cache blocks referenced by live sequences.",
        s.blocks_used);
  gauge("inferd:kv_cache_blocks_cached",
        "KV-cache blocks that nothing references but that hold a reusable prefix.",
        s.blocks_cached);
  gauge("inferd:engine_sleeping", "1 while the model sleeps (sleep mode, POST /sleep), else 0.",
        s.sleep_level > 0 ? 1 : 0);
  gauge("inferd:engine_sleep_level", "The sleep level (1 or 2) while asleep, 0 when awake.",
        s.sleep_level);
}

// Speculative decoding's counters, named as vLLM names them (only when speculation is on).
void Metrics::render_spec_decode(std::string& out, const EngineStats& s) const {
  const std::string& ml = labels_;
  auto counter = [&](const std::string& base, const char* help, double v) {
    head(out, base, "counter", help);
    out += fmt::format("{}_total{{{}}} {}\n", base, ml, prom_number(v));
  };
  counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.",
          double(s.spec_num_drafts));
  counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.",
          double(s.spec_num_draft_tokens));
  counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.",
          double(s.spec_num_accepted_tokens));
  const char* pos = "vllm:spec_decode_num_accepted_tokens_per_pos";
  head(out, pos, "counter", "Accepted tokens per draft position.");
  for (int32_t i = 0; i < s.spec_num_speculative_tokens && i < kMaxSpeculativeTokens; ++i)
    out += fmt::format("{}_total{{{},position=\"{}\"}} {}\n", pos, ml, i,
                       prom_number(double(s.spec_accepted_per_pos[size_t(i)])));
}

// What finished requests recorded.
void Metrics::render_requests(std::string& out) const {
  const std::string& ml = labels_;
  auto counter = [&](const std::string& base, const char* help, double v) {
    head(out, base, "counter", help);
    out += fmt::format("{}_total{{{}}} {}\n", base, ml, prom_number(v));
  };
  auto histogram = [&](const char* name, const char* help, const Histogram& h) {
    head(out, name, "histogram", help);
    h.render(out, name, ml);
  };
  counter("vllm:prompt_tokens", "Number of prefill tokens processed.", double(prompt_tokens_));
  counter("vllm:generation_tokens", "Number of generation tokens processed.",
          double(generation_tokens_));
  head(out, "vllm:request_success", "counter", "Count of successfully processed requests.");
  for (const auto& [reason, n] : success_by_reason_)
    out += fmt::format("vllm:request_success_total{{{},finished_reason=\"{}\"}} {}\n", ml, reason,
                       prom_number(double(n)));
  histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
            ttft_);
  histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
            itl_);
  histogram("vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.", tpot_);
  histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
            e2e_);
  histogram("vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.", queue_);
  histogram("vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.", inference_);
  histogram("vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.", prefill_);
  histogram("vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.", decode_);
  histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", prompt_hist_);
  histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", gen_hist_);
  histogram("vllm:request_params_n", "Histogram of the n request parameter.", params_n_);
  histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
            params_max_tokens_);
}

std::string Metrics::render(const EngineStats& s) const {
  std::lock_guard lk(mu_);
  std::string out;
  render_engine(out, s);
  render_requests(out);
  head(out, "inferd:http_requests", "counter", "HTTP requests by handler, method and status.");
  for (const auto& [key, n] : http_) {
    const auto& [h, m, st] = key;
    out +=
        fmt::format("inferd:http_requests_total{{handler=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                    prom_label(h), prom_label(m), st, prom_number(double(n)));
  }
  // Prometheus' standard process collector name (what vLLM's prometheus_client exports).
  head(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out += fmt::format("process_resident_memory_bytes {}\n", prom_number(resident_bytes()));
  return out;
}

}  // namespace inferd::server
