// `inferd bench serve|throughput|latency`: the load generator and the benchmark suite (issue 7).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bench/client.h"
#include "bench/counters.h"
#include "bench/dataset.h"
#include "bench/http_util.h"
#include "bench/metrics.h"
#include "bench/offline.h"
#include "bench/report.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"
#include "core/mmap_file.h"
#include "inferd/engine.h"
#include "inferd/llm.h"
#include "llm/resolved_config.h"
#include "model/config.h"
#include "model/lora/peft_adapter.h"
#include "runner/executor.h"
#include "tokenizer/tokenizer.h"

namespace inferd::cli {

namespace {

using namespace inferd::bench;

constexpr const char* kMetricDefinitions =
    "Metrics (as vLLM's benchmark_serving defines them; latencies of successful requests):\n"
    "  TTFT  time to first token: from the start of the request (connection included) to the\n"
    "        first streamed chunk that carries generated text.\n"
    "  TPOT  time per output token, per request: (E2E - TTFT) / (output tokens - 1), for\n"
    "        requests with 2+ output tokens; output tokens come from the server's usage\n"
    "        (stream_options.include_usage) when reported, else from the number of chunks.\n"
    "  ITL   inter-token latency: every gap between successive chunks with text, over all\n"
    "        requests (a chunk holding several tokens is one gap).\n"
    "  E2E   request start to `data: [DONE]`.\n"
    "  Goodput: requests/s that met every SLO given (--slo-ttft-ms, --slo-tpot-ms, --slo-e2e-ms).\n"
    "Errors are counted by kind: http_<status>, connect, timeout, disconnect (connection lost\n"
    "mid-response), bad_stream (not SSE, unparseable chunk, error event, no [DONE], no choices).";

double parse_rate(const std::string& s, const char* flag) {
  if (s == "inf" || s == "infinity") return std::numeric_limits<double>::infinity();
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || !(v > 0))
    fail("{} '{}': expected a positive number of requests/s or 'inf'", flag, s);
  return v;
}

std::vector<double> parse_list(const std::string& s, const char* flag) {
  std::vector<double> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) fail("{} '{}': empty entry", flag, s);
    out.push_back(parse_rate(item, flag));
    i = j + 1;
  }
  return out;
}

struct DatasetFlags {
  DatasetOptions opts;
  void add_to(CLI::App* cmd, const char* default_dataset) {
    opts.name = default_dataset;
    cmd->add_option("--dataset,--dataset-name", opts.name,
                    "random | sharegpt-like | mixed-long | shared-prefix | FILE.jsonl "
                    "({\"prompt\" | \"messages\", \"max_tokens\"} per line)")
        ->capture_default_str();
    cmd->add_option("--num-prompts", opts.num_prompts, "Requests to send (measured)")
        ->capture_default_str();
    cmd->add_option("--input-len", opts.input_len,
                    "random: prompt tokens; shared-prefix: tokens after the prefix")
        ->capture_default_str();
    cmd->add_option("--output-len", opts.output_len,
                    "random / shared-prefix: tokens to generate; JSONL: when a line has no "
                    "max_tokens")
        ->capture_default_str();
    cmd->add_option("--range-ratio", opts.range_ratio,
                    "random / shared-prefix: lengths uniform in [len*(1-r), len*(1+r)]")
        ->capture_default_str();
    cmd->add_option("--prefix-len", opts.prefix_len, "shared-prefix: tokens of each shared prefix")
        ->capture_default_str();
    cmd->add_option("--num-prefixes", opts.num_prefixes,
                    "shared-prefix: distinct prefixes (request i uses prefix i mod N)")
        ->capture_default_str();
    cmd->add_option("--long-fraction", opts.long_fraction,
                    "mixed-long: share of the sharegpt-like requests given long prompts")
        ->capture_default_str();
    cmd->add_option("--long-input-len", opts.long_input_len, "mixed-long: tokens of a long prompt")
        ->capture_default_str();
  }
};

// ---------------------------------------------------------------------------------------------
// bench serve

struct ServeArgs {
  DatasetFlags data;
  std::string base_url = "http://127.0.0.1:8000";
  std::string endpoint = "/v1/completions";
  std::string model;
  std::string tokenizer;
  std::string request_rate = "inf";
  std::string sweep_rates;
  double burstiness = 1.0;
  int32_t max_concurrency = 0;
  int32_t num_warmups = 0;
  uint64_t seed = 0;
  std::optional<double> slo_ttft_ms, slo_tpot_ms, slo_e2e_ms;
  std::string percentiles = "50,90,99";
  std::string json_path;
  std::string plot_path;
  std::string api_key;
  double request_timeout = 600;
  bool no_ignore_eos = false;
  bool no_usage = false;
  double temperature = 0.0;
  std::string extra_body;
  bool no_progress = false;
};

ServeOptions serve_options(const ServeArgs& a) {
  ServeOptions o;
  o.base = parse_url(a.base_url);
  o.endpoint = a.endpoint.empty() || a.endpoint[0] != '/' ? "/" + a.endpoint : a.endpoint;
  o.api_key = a.api_key;
  if (o.api_key.empty())
    if (const char* k = std::getenv("OPENAI_API_KEY")) o.api_key = k;
  o.model = a.model.empty() ? discover_model(o.base, o.api_key) : a.model;
  o.burstiness = a.burstiness;
  o.max_concurrency = a.max_concurrency;
  o.seed = a.seed;
  o.request_timeout_s = a.request_timeout;
  o.force_output_len = !a.no_ignore_eos;
  o.include_usage = !a.no_usage;
  o.temperature = a.temperature;
  o.progress = !a.no_progress;
  if (!a.extra_body.empty()) {
    o.extra_body = nlohmann::json::parse(a.extra_body, nullptr, false);
    if (!o.extra_body.is_object()) fail("--extra-body '{}': expected a JSON object", a.extra_body);
  }
  if (a.num_warmups < 0) fail("--num-warmups must be >= 0, got {}", a.num_warmups);
  return o;
}

MetricOptions metric_options(const ServeArgs& a) {
  MetricOptions mo;
  mo.percentiles = {};
  for (double p : parse_list(a.percentiles, "--percentiles")) {
    if (!(p > 0 && p <= 100)) fail("--percentiles: {} is not in (0, 100]", p);
    mo.percentiles.push_back(p);
  }
  mo.slo_ttft_ms = a.slo_ttft_ms;
  mo.slo_tpot_ms = a.slo_tpot_ms;
  mo.slo_e2e_ms = a.slo_e2e_ms;
  mo.split_long = a.data.opts.name == "mixed-long";
  return mo;
}

// Counts prompt tokens for the target tokenizer: --tokenizer, else the server's /tokenize (null
// where the server has none and the prompts come from a file).
std::unique_ptr<TokenCounter> make_counter(const ServeArgs& a, const ServeOptions& o) {
  if (!a.tokenizer.empty()) return std::make_unique<LocalTokenCounter>(a.tokenizer);
  try {
    return std::make_unique<RemoteTokenCounter>(o.base, o.api_key, o.model);
  } catch (const Error& e) {
    if (!is_dataset_file(a.data.opts.name)) throw;
    LOG_WARN("{}; prompt lengths will come from the server's usage", e.what());
  }
  return nullptr;
}

// --num-warmups requests, not counted: prompts of their own (another seed), so that the prefix
// cache does not hold the measured prompts afterwards; a prompt file can only repeat its first
// lines.
void run_warmups(const ServeArgs& a, const ServeOptions& o, const DatasetOptions& dopts,
                 const std::vector<BenchRequest>& requests, TokenCounter* counter) {
  std::vector<BenchRequest> warm;
  if (!is_dataset_file(dopts.name)) {
    DatasetOptions w = dopts;
    w.seed = dopts.seed + 0x9e3779b97f4a7c15ull;
    w.num_prompts = a.num_warmups;
    warm = make_dataset(w, counter);
  } else {
    for (int32_t i = 0; i < a.num_warmups; ++i)
      warm.push_back(requests[size_t(i) % requests.size()]);
  }
  ServeOptions wo = o;
  wo.request_rate = std::numeric_limits<double>::infinity();
  wo.progress_label = "warm-up ";
  const RunResult w = run_serving(wo, warm);
  size_t failed = 0;
  for (const auto& r : w.requests) failed += !r.success;
  std::fprintf(stderr, "warm-up: %d requests in %.2f s (%zu failed; not counted)\n", a.num_warmups,
               w.duration_s, failed);
}

nlohmann::json config_json(const ServeArgs& a, const ServeOptions& o, size_t num_prompts,
                           const TokenCounter* counter) {
  return {{"base_url", a.base_url},
          {"endpoint", o.endpoint},
          {"model", o.model},
          {"dataset", a.data.opts.name},
          {"num_prompts", num_prompts},
          {"input_len", a.data.opts.input_len},
          {"output_len", a.data.opts.output_len},
          {"range_ratio", a.data.opts.range_ratio},
          {"prefix_len", a.data.opts.prefix_len},
          {"num_prefixes", a.data.opts.num_prefixes},
          {"long_fraction", a.data.opts.long_fraction},
          {"long_input_len", a.data.opts.long_input_len},
          {"seed", a.seed},
          {"burstiness", a.burstiness},
          {"max_concurrency", a.max_concurrency},
          {"num_warmups", a.num_warmups},
          {"force_output_len", o.force_output_len},
          {"tokenizer", counter ? counter->describe() : std::string("none")}};
}

// The sweep table, --json and --plot, once every rate has run.
void write_serve_results(const ServeArgs& a, const ServeOptions& o, const nlohmann::json& out,
                         const std::vector<BenchMetrics>& all, const MetricOptions& mo,
                         size_t num_prompts) {
  if (all.size() > 1) std::printf("\nSweep:\n%s", format_sweep_table(all, mo).c_str());
  if (!a.json_path.empty()) {
    write_text_file(a.json_path, out.dump(1) + "\n");
    std::fprintf(stderr, "wrote %s\n", a.json_path.c_str());
  }
  if (!a.plot_path.empty()) {
    write_text_file(a.plot_path,
                    render_sweep_svg(all, mo,
                                     "inferd bench serve: " + o.model + " (" + a.data.opts.name +
                                         ", " + std::to_string(num_prompts) + " prompts)"));
    std::fprintf(stderr, "wrote %s\n", a.plot_path.c_str());
  }
}

void run_serve(const ServeArgs& a) {
  ServeOptions o = serve_options(a);
  const MetricOptions mo = metric_options(a);
  const std::vector<double> rates =
      a.sweep_rates.empty() ? std::vector<double>{parse_rate(a.request_rate, "--request-rate")}
                            : parse_list(a.sweep_rates, "--sweep-rates");

  // Prompts: token-exact for the target tokenizer.
  const std::unique_ptr<TokenCounter> counter = make_counter(a, o);
  std::fprintf(stderr, "building %d prompts (%s) with %s...\n", a.data.opts.num_prompts,
               a.data.opts.name.c_str(), counter ? counter->describe().c_str() : "no tokenizer");
  DatasetOptions dopts = a.data.opts;
  dopts.seed = a.seed;
  const std::vector<BenchRequest> requests = make_dataset(dopts, counter.get());
  if (a.num_warmups > 0) run_warmups(a, o, dopts, requests, counter.get());

  nlohmann::json out;
  out["config"] = config_json(a, o, requests.size(), counter.get());
  out["runs"] = nlohmann::json::array();
  std::vector<BenchMetrics> all;
  for (double rate : rates) {
    o.request_rate = rate;
    o.progress_label = rates.size() > 1 ? "rate " + format_rate(rate) + " " : "";
    const RunResult run = run_serving(o, requests);
    BenchMetrics m = compute_metrics(run, mo);
    std::printf("%s", format_report(m, mo).c_str());
    std::fflush(stdout);
    if (!a.json_path.empty()) out["runs"].push_back(run_to_json(run, m));
    all.push_back(std::move(m));
  }
  write_serve_results(a, o, out, all, mo, requests.size());
}

void register_bench_serve(CLI::App& bench) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "serve", "Drive an OpenAI-compatible server over HTTP with streaming requests");
  cmd->footer(kMetricDefinitions);
  cmd->add_option("--base-url", a->base_url, "Server address, http://HOST:PORT[/PREFIX]")
      ->capture_default_str();
  cmd->add_option("--endpoint", a->endpoint, "/v1/completions or /v1/chat/completions")
      ->capture_default_str();
  cmd->add_option("--model", a->model, "Model name to send (default: the first of /v1/models)");
  cmd->add_option("--tokenizer", a->tokenizer,
                  "Tokenizer directory (tokenizer.json) for token-exact prompts; default: the "
                  "server's POST /tokenize");
  a->data.add_to(cmd, "sharegpt-like");
  cmd->add_option("--request-rate", a->request_rate,
                  "Requests/s with Poisson arrivals, or inf to send all at once")
      ->capture_default_str();
  cmd->add_option("--burstiness", a->burstiness,
                  "Gamma shape of inter-arrival times (1: Poisson; <1 burstier)")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", a->max_concurrency,
                  "Most requests in flight (0: unlimited); later arrivals wait for a slot")
      ->capture_default_str();
  cmd->add_option("--sweep-rates", a->sweep_rates,
                  "Comma-separated request rates, one run each (overrides --request-rate)");
  cmd->add_option("--num-warmups", a->num_warmups, "Requests sent first and not counted")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the dataset and of the arrival times")
      ->capture_default_str();
  cmd->add_option("--slo-ttft-ms", a->slo_ttft_ms, "Goodput SLO on TTFT (ms)");
  cmd->add_option("--slo-tpot-ms", a->slo_tpot_ms, "Goodput SLO on TPOT (ms)");
  cmd->add_option("--slo-e2e-ms", a->slo_e2e_ms, "Goodput SLO on end-to-end latency (ms)");
  cmd->add_option("--percentiles", a->percentiles, "Latency percentiles to report")
      ->capture_default_str();
  cmd->add_option("--json", a->json_path, "Write every per-request measurement to this file");
  cmd->add_option("--plot", a->plot_path,
                  "Write an SVG of latency percentiles against throughput (one point per rate)");
  cmd->add_option("--api-key", a->api_key, "Bearer token (default: $OPENAI_API_KEY)");
  cmd->add_option("--request-timeout", a->request_timeout,
                  "Seconds before a request counts as a timeout")
      ->capture_default_str();
  cmd->add_flag("--no-ignore-eos", a->no_ignore_eos,
                "Do not send ignore_eos and min_tokens (for servers that reject unknown fields; "
                "outputs may then end early)");
  cmd->add_flag("--no-usage", a->no_usage,
                "Do not ask for stream_options.include_usage (output tokens are then counted "
                "from chunks)");
  cmd->add_option("--temperature", a->temperature, "Sampling temperature sent")
      ->capture_default_str();
  cmd->add_option("--extra-body", a->extra_body,
                  "JSON object merged into every request body, e.g. '{\"top_k\": 20}'");
  cmd->add_flag("--no-progress", a->no_progress, "No live progress line on stderr");
  cmd->callback([a] { run_serve(*a); });
}

// ---------------------------------------------------------------------------------------------
// bench throughput / latency (in-process engine)

struct OfflineArgs {
  ModelFlags model;  // --tokenizer (throughput) and --enable-prefix-caching bind to its args
  DatasetFlags data;
  uint64_t dataset_seed = 0;
  float temperature = 1.0f;
  std::string json_schema;  // throughput: a JSON schema file put on every request
  int32_t num_iters = 3;
  int32_t num_warmups = 1;
  std::string json_path;
  // LoRA (issue 29): random adapters of this rank on all seven projections, requests spread over
  // them (and over --lora-modules) round-robin.
  int32_t lora_dummy_count = 0;
  int32_t lora_dummy_rank = 16;

  OfflineArgs() { model.args.scheduler.max_queue = 0; }  // every request is submitted at once
  const std::string& tokenizer() const { return model.args.model.tokenizer; }
};

// Without --tokenizer the engine runs on token ids alone; with one it can enforce structured
// outputs (--json-schema).
std::unique_ptr<LLM> load_llm(const OfflineArgs& a) {
  EngineArgs args = a.model.args;
  args.model.skip_tokenizer_init = args.model.tokenizer.empty();
  if (a.lora_dummy_count < 0) fail("--lora-dummy-count must be >= 0, got {}", a.lora_dummy_count);
  if (a.lora_dummy_count > 0) {
    if (a.lora_dummy_rank <= 0)
      fail("--lora-dummy-rank must be positive, got {}", a.lora_dummy_rank);
    args.lora.enable_lora = true;
    if (args.lora.max_loras == LoraArgs{}.max_loras) args.lora.max_loras = a.lora_dummy_count;
    args.lora.max_lora_rank = std::max(args.lora.max_lora_rank, a.lora_dummy_rank);
  }
  LLMOptions opts;
  opts.expert_load_profile = true;  // the step profile's expert-load line (MoE models)
  return LLM::load(args, opts);
}

// The adapters requests are spread over: --lora-dummy-count random ones (given to the engine
// here, ids from 1 << 20) and those of --lora-modules. Empty: the base model.
std::vector<int32_t> bench_lora_ids(const OfflineArgs& a, LLM& llm) {
  std::vector<int32_t> ids;
  if (a.lora_dummy_count > 0) {
    const ModelConfig cfg = load_model_config(a.model.model());
    for (int32_t i = 0; i < a.lora_dummy_count; ++i) {
      const int32_t id = (1 << 20) + i;
      llm.engine()->add_lora_adapter(
          id, std::make_shared<const LoraAdapter>(
                  random_lora_adapter(cfg, a.lora_dummy_rank, a.dataset_seed + uint64_t(i))));
      ids.push_back(id);
    }
    std::fprintf(stderr, "LoRA: %d random adapters of rank %d on all seven projections\n",
                 a.lora_dummy_count, a.lora_dummy_rank);
  }
  if (llm.lora())
    for (const LoraAdapterInfo& info : llm.lora()->list()) ids.push_back(info.id);
  return ids;
}

void add_engine_flags(CLI::App* cmd, OfflineArgs& a) {
  a.model.add_to(cmd);
  cmd->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching",
                a.model.args.cache.enable_prefix_caching,
                "Reuse KV blocks of shared prompt prefixes")
      ->capture_default_str();
  cmd->add_option("--temperature", a.temperature, "Sampling temperature")->capture_default_str();
  cmd->add_option("--json", a.json_path, "Write the results to this JSON file");
  cmd->add_option("--lora-dummy-count", a.lora_dummy_count,
                  "Random LoRA adapters to spread the requests over (round-robin; with "
                  "--lora-modules' adapters); implies --enable-lora")
      ->capture_default_str();
  cmd->add_option("--lora-dummy-rank", a.lora_dummy_rank,
                  "Rank of the random LoRA adapters (all seven projections)")
      ->capture_default_str();
}

struct Workload {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int32_t> outputs;  // tokens to generate, per prompt
};

// The dataset's prompts as text encoded by --tokenizer; without one (counter null) only the
// synthetic datasets are possible, and their ids come once the model is loaded (random_workload).
Workload tokenized_workload(const DatasetOptions& d, LocalTokenCounter* counter) {
  Workload w;
  if (counter) {
    for (const BenchRequest& r : make_dataset(d, counter)) {
      w.prompts.push_back(r.prompt_ids);
      w.outputs.push_back(r.output_len);
    }
  } else if (is_dataset_file(d.name)) {
    fail("--dataset {}: a prompt file needs --tokenizer DIR to become token ids", d.name);
  } else if (!is_generated_dataset(d.name)) {
    fail(
        "--dataset '{}': expected random, sharegpt-like, mixed-long, shared-prefix or a .jsonl "
        "file",
        d.name);
  }
  return w;
}

// Random token ids of the dataset's lengths (no tokenizer needed, e.g. --load-format dummy).
Workload random_workload(const DatasetOptions& d, int32_t vocab) {
  Workload w;
  const std::vector<LengthPair> lens = dataset_lengths(d);
  std::vector<int32_t> in;
  for (const auto& l : lens) {
    in.push_back(l.input);
    w.outputs.push_back(l.output);
  }
  w.prompts = random_token_prompts(in, vocab, d.seed);
  if (d.name == "shared-prefix") {
    if (d.prefix_len <= 0 || d.num_prefixes <= 0)
      fail("--prefix-len and --num-prefixes must be positive, got {} and {}", d.prefix_len,
           d.num_prefixes);
    const std::vector<int32_t> plens(static_cast<size_t>(d.num_prefixes), d.prefix_len);
    const auto prefixes = random_token_prompts(plens, vocab, d.seed + 1);
    for (size_t i = 0; i < w.prompts.size(); ++i) {
      std::vector<int32_t> p = prefixes[i % prefixes.size()];
      p.insert(p.end(), w.prompts[i].begin(), w.prompts[i].end());
      w.prompts[i] = std::move(p);
    }
  }
  return w;
}

// --json-schema: the constraint put on every request.
std::optional<StructuredOutputs> schema_constraint(const OfflineArgs& a) {
  if (a.json_schema.empty()) return std::nullopt;
  if (a.tokenizer().empty())
    fail("--json-schema needs --tokenizer DIR (the grammar is matched against its vocabulary)");
  StructuredOutputs so;
  so.json = read_text_file(a.json_schema);
  std::fprintf(stderr, "every request follows the JSON schema in %s\n", a.json_schema.c_str());
  return so;
}

// Where the run's time went: the grammar's share (structured outputs) and the device's steps.
void print_step_report(const EngineStats* grammar, const StepTiming& st,
                       const std::string& profile) {
  if (grammar) {
    const EngineStats& es = *grammar;
    std::printf(
        "grammar: %lld masks, %.3f s filling them (%.1f us a mask), %.3f s in the steps' "
        "token processing\n",
        static_cast<long long>(es.grammar_masks), es.grammar_mask_seconds,
        1e6 * es.grammar_mask_seconds / double(std::max<int64_t>(1, es.grammar_masks)),
        es.grammar_accept_seconds);
  }
  if (st.steps > 0) {
    // The device's own time per step (events), and how long it waited for the host between steps.
    std::printf(
        "GPU steps %lld: busy %.3f s, idle between steps %.3f s (%.1f%% of the run), %.2f ms "
        "a step\n",
        static_cast<long long>(st.steps), st.busy_ms / 1e3, st.idle_ms / 1e3,
        100.0 * st.idle_ms / std::max(1e-9, st.busy_ms + st.idle_ms),
        st.busy_ms / double(st.steps));
    std::printf("%s", profile.c_str());
  }
}

// Speculative decoding over a run (`after` - `before`): drafts and the mean accepted length
// (1 + accepted / drafts, vLLM's "mean acceptance length"); nothing when speculation is off.
nlohmann::json spec_report(const EngineStats& before, const EngineStats& after) {
  if (after.spec_num_speculative_tokens <= 0) return nullptr;
  const int64_t drafts = after.spec_num_drafts - before.spec_num_drafts;
  const int64_t tokens = after.spec_num_draft_tokens - before.spec_num_draft_tokens;
  const int64_t accepted = after.spec_num_accepted_tokens - before.spec_num_accepted_tokens;
  const double mean_len = 1.0 + double(accepted) / double(std::max<int64_t>(1, drafts));
  std::printf(
      "speculative decoding: %lld verifications, %lld draft tokens, %lld accepted (%.1f%%), "
      "mean accepted length %.3f\n",
      static_cast<long long>(drafts), static_cast<long long>(tokens),
      static_cast<long long>(accepted),
      100.0 * double(accepted) / double(std::max<int64_t>(1, tokens)), mean_len);
  return {{"num_drafts", drafts},
          {"num_draft_tokens", tokens},
          {"num_accepted_tokens", accepted},
          {"mean_accepted_length", mean_len}};
}

void print_throughput(const ThroughputResult& r) {
  std::printf(
      "============ Offline Throughput Result ============\n"
      "%-36s%14zu\n%-36s%14zu\n%-36s%14lld\n%-36s%14lld\n%-36s%14.2f\n%-36s%14.2f\n%-36s%14.2f\n"
      "%-36s%14.2f\n"
      "===================================================\n",
      "Requests:", r.num_requests, "Failed:", r.failed,
      "Prompt tokens:", static_cast<long long>(r.prompt_tokens),
      "Generated tokens:", static_cast<long long>(r.output_tokens), "Elapsed (s):", r.elapsed_s,
      "Requests/s:", r.requests_per_s, "Output tokens/s:", r.output_tok_s,
      "Total tokens/s (prompt + output):", r.total_tok_s);
}

void write_throughput_json(const OfflineArgs& a, const std::string& dataset,
                           const ThroughputResult& r, const StepTiming& st,
                           const nlohmann::json& spec) {
  nlohmann::json j = {{"model", a.model.model()},
                      {"load_format", a.model.args.model.load_format},
                      {"dataset", dataset},
                      {"num_requests", r.num_requests},
                      {"failed", r.failed},
                      {"prompt_tokens", r.prompt_tokens},
                      {"output_tokens", r.output_tokens},
                      {"elapsed_s", r.elapsed_s},
                      {"requests_per_s", r.requests_per_s},
                      {"output_tokens_per_s", r.output_tok_s},
                      {"total_tokens_per_s", r.total_tok_s},
                      {"lora_dummy_count", a.lora_dummy_count},
                      {"lora_dummy_rank", a.lora_dummy_count > 0 ? a.lora_dummy_rank : 0}};
  if (!spec.is_null()) j["speculative"] = spec;
  if (st.steps > 0) {
    j["gpu_steps"] = st.steps;
    j["gpu_busy_s"] = st.busy_ms / 1e3;
    j["gpu_idle_s"] = st.idle_ms / 1e3;
    j["gpu_idle_pct"] = 100.0 * st.idle_ms / std::max(1e-9, st.busy_ms + st.idle_ms);
  }
  write_text_file(a.json_path, j.dump(1) + "\n");
}

void run_throughput_cmd(const OfflineArgs& a) {
  std::unique_ptr<LocalTokenCounter> counter;
  if (!a.tokenizer().empty()) counter = std::make_unique<LocalTokenCounter>(a.tokenizer());
  DatasetOptions d = a.data.opts;
  d.seed = a.dataset_seed;
  Workload w = tokenized_workload(d, counter.get());
  const std::unique_ptr<LLM> llm = load_llm(a);
  Engine& engine = *llm->engine();
  if (!counter) w = random_workload(d, engine.vocab_size());
  const int32_t max_len = engine.config().max_model_len;
  if (size_t n = fit_to_context(w.prompts, w.outputs, max_len))
    LOG_WARN("{} requests were shortened to fit the context length {}", n, max_len);
  std::fprintf(stderr, "running %zu requests (%s), all submitted at once...\n", w.prompts.size(),
               d.name.c_str());
  const std::optional<StructuredOutputs> constraint = schema_constraint(a);
  const std::vector<int32_t> lora_ids = bench_lora_ids(a, *llm);
  ModelExecutor& model = *llm->executor();
  model.reset_step_timing();
  const EngineStats before = engine.stats();
  const ThroughputResult r =
      run_throughput(engine, w.prompts, w.outputs, a.temperature, constraint, lora_ids);
  const StepTiming st = model.step_timing();
  const EngineStats es = engine.stats();
  print_step_report(constraint ? &es : nullptr, st, llm->step_profile());
  print_throughput(r);
  const nlohmann::json spec = spec_report(before, es);
  if (!a.json_path.empty()) write_throughput_json(a, d.name, r, st, spec);
}

// The decode floor of one stream: the device's copy bandwidth over the bytes of weights a token
// reads (an MoE model's routed experts only, ModelSummary::active_weight_bytes). Printed under
// the latency result; the bandwidth is known for the reference GPUs only (H100 SXM 3.35 TB/s,
// H200 4.8 TB/s), elsewhere only the bytes are printed.
struct DecodeFloor {
  double tok_s = 0, pct = 0;
};
DecodeFloor decode_floor(const ModelSummary& m, double decode_tok_s) {
  const double bw = m.backend.find("H200") != std::string::npos   ? 4.8e12
                    : m.backend.find("H100") != std::string::npos ? 3.35e12
                                                                  : 0.0;
  const double gb = 1e-9;
  std::printf("%-34s%8.2f GB of %.2f GB",
              "Weights read per decode token:", double(m.active_weight_bytes) * gb,
              double(m.weight_bytes) * gb);
  if (m.num_experts > 0)
    std::printf(" (MoE: %lld of %lld experts)", static_cast<long long>(m.num_experts_per_tok),
                static_cast<long long>(m.num_experts));
  std::printf("\n");
  DecodeFloor f;
  if (bw > 0 && m.active_weight_bytes > 0) {
    f.tok_s = bw / double(m.active_weight_bytes);
    f.pct = 100.0 * decode_tok_s / f.tok_s;
    std::printf("%-34s%8.1f tok/s at %.2f TB/s; decode / floor %.1f%%\n",
                "Decode floor (active weights):", f.tok_s, bw * 1e-12, f.pct);
  }
  return f;
}

void run_latency_cmd(const OfflineArgs& a) {
  const DatasetOptions& d = a.data.opts;
  if (d.input_len <= 0) fail("--input-len must be positive, got {}", d.input_len);
  if (d.output_len <= 0) fail("--output-len must be positive, got {}", d.output_len);
  if (a.num_iters <= 0) fail("--num-iters must be positive, got {}", a.num_iters);
  if (a.num_warmups < 0) fail("--num-warmups must be >= 0, got {}", a.num_warmups);
  // --dataset FILE.jsonl: iteration i runs prompt i (cycling), encoded by the tokenizer.
  Workload file;
  if (!d.name.empty()) {
    if (!is_dataset_file(d.name)) fail("--dataset '{}': expected a .jsonl file of prompts", d.name);
    LocalTokenCounter counter(a.tokenizer().empty() ? a.model.model() : a.tokenizer());
    DatasetOptions fd = d;
    fd.num_prompts = 0;
    file = tokenized_workload(fd, &counter);
  }
  const std::unique_ptr<LLM> llm = load_llm(a);
  Engine& engine = *llm->engine();
  const int32_t vocab = engine.vocab_size(), max_len = engine.config().max_model_len;
  if (file.prompts.empty() && d.input_len + d.output_len > max_len)
    fail("--input-len {} + --output-len {} exceeds the context length {}", d.input_len,
         d.output_len, max_len);
  const std::vector<int32_t> lora_ids = bench_lora_ids(a, *llm);
  if (size_t n = fit_to_context(file.prompts, file.outputs, max_len))
    LOG_WARN("{} prompts were shortened to fit the context length {}", n, max_len);
  nlohmann::json iters = nlohmann::json::array();
  std::vector<double> prefill, decode, ttft, e2e;
  int64_t in_tokens = 0, out_tokens = 0;  // over the measured iterations
  EngineStats spec_before;
  for (int32_t i = 0; i < a.num_warmups + a.num_iters; ++i) {
    if (i == a.num_warmups) {
      spec_before = engine.stats();
      llm->executor()->reset_step_timing();  // the step profile of the measured iterations
    }
    // A fresh random prompt per iteration so that the prefix cache does not serve it.
    const size_t fi = file.prompts.empty() ? 0 : size_t(i) % file.prompts.size();
    const auto prompt = file.prompts.empty() ? random_token_prompts({d.input_len}, vocab,
                                                                    a.dataset_seed + uint64_t(i))[0]
                                             : file.prompts[fi];
    const int32_t out_len = file.prompts.empty() ? d.output_len : file.outputs[fi];
    const LatencyResult r = run_latency(engine, prompt, out_len, a.temperature,
                                        lora_ids.empty() ? -1 : lora_ids.front());
    const bool warm = i < a.num_warmups;
    std::fprintf(stderr,
                 "%s %d: TTFT %.1f ms (prefill %.1f tok/s), decode %.2f tok/s, E2E %.3f s\n",
                 warm ? "warm-up" : "iteration", warm ? i + 1 : i - a.num_warmups + 1,
                 r.ttft_s * 1e3, r.prefill_tok_s, r.decode_tok_s, r.e2e_s);
    if (warm) continue;
    in_tokens += r.prompt_tokens;
    out_tokens += r.output_tokens;
    prefill.push_back(r.prefill_tok_s);
    decode.push_back(r.decode_tok_s);
    ttft.push_back(r.ttft_s * 1e3);
    e2e.push_back(r.e2e_s);
    iters.push_back({{"ttft_ms", r.ttft_s * 1e3},
                     {"e2e_s", r.e2e_s},
                     {"prompt_tokens", r.prompt_tokens},
                     {"output_tokens", r.output_tokens},
                     {"prefill_tokens_per_s", r.prefill_tok_s},
                     {"decode_tokens_per_s", r.decode_tok_s}});
  }
  print_step_report(nullptr, llm->executor()->step_timing(), llm->step_profile());
  const nlohmann::json spec = spec_report(spec_before, engine.stats());
  const std::vector<double> ps = {50};
  const Summary sp = summarize(prefill, ps), sd = summarize(decode, ps), st = summarize(ttft, ps),
                se = summarize(e2e, ps);
  std::printf(
      "============ Offline Latency Result ============\n"
      "%-34s%8d\n%-34s%8d\n%-34s%8d\n"
      "%-34s%8.2f (median %.2f)\n%-34s%8.2f (median %.2f)\n%-34s%8.2f (median %.2f)\n"
      "%-34s%8.3f (median %.3f)\n"
      "================================================\n",
      "Prompt tokens:", int(in_tokens / a.num_iters),
      "Generated tokens:", int(out_tokens / a.num_iters), "Iterations:", a.num_iters,
      "Prefill tok/s (mean):", sp.mean, sp.at(50), "Decode tok/s (mean):", sd.mean, sd.at(50),
      "TTFT ms (mean):", st.mean, st.at(50), "End-to-end s (mean):", se.mean, se.at(50));
  const DecodeFloor floor = decode_floor(llm->summary(), sd.mean);
  if (!a.json_path.empty()) {
    nlohmann::json j = {{"model", a.model.model()},
                        {"load_format", a.model.args.model.load_format},
                        {"active_weight_bytes", llm->summary().active_weight_bytes},
                        {"decode_floor_tok_s", floor.tok_s},
                        {"decode_floor_pct", floor.pct},
                        {"input_len", d.input_len},
                        {"output_len", d.output_len},
                        {"prefill_tokens_per_s_mean", sp.mean},
                        {"decode_tokens_per_s_mean", sd.mean},
                        {"ttft_ms_mean", st.mean},
                        {"e2e_s_mean", se.mean},
                        {"iterations", iters}};
    if (!spec.is_null()) j["speculative"] = spec;
    write_text_file(a.json_path, j.dump(1) + "\n");
  }
}

// Offline throughput on a GPU takes vLLM's defaults for its offline LLM class on 80 GB GPUs for
// the batch limits not given: 1024 sequences and 16,384-token steps instead of serving's 256 /
// 2048, which keep TPOT low (one H100, 8B shape, 1000 sharegpt-like: 7,843 vs 7,271 out tok/s;
// docs/performance.md). The CPU keeps serving's (its workspace and logits buffers grow with both,
// and nothing there gains from larger steps).
void apply_offline_gpu_defaults(const CLI::App& cmd, OfflineArgs& a) {
  SchedulerArgs& s = a.model.args.scheduler;
  const bool seqs = cmd.get_option("--max-num-seqs")->count() > 0;
  const bool tokens = cmd.get_option("--max-num-batched-tokens")->count() > 0;
  if ((seqs && tokens) || resolve_engine_args(a.model.args).device != DeviceKind::kCuda) return;
  if (!seqs) s.max_num_seqs = 1024;
  if (!tokens) s.max_num_batched_tokens = 16384;
}

void register_throughput(CLI::App& bench) {
  auto a = std::make_shared<OfflineArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "throughput",
      "In-process engine throughput (no HTTP): every request submitted at once; output tok/s "
      "and total tok/s. On a GPU, --max-num-seqs and --max-num-batched-tokens default to 1024 "
      "and 16384 (vLLM's offline defaults) unless given");
  add_engine_flags(cmd, *a);
  a->data.add_to(cmd, "sharegpt-like");
  cmd->add_option("--tokenizer", a->model.args.model.tokenizer,
                  "Tokenizer directory: prompts become real text encoded by it (default: random "
                  "token ids, fine for --load-format dummy); needed for a JSONL dataset");
  cmd->add_option("--dataset-seed", a->dataset_seed, "Seed of the dataset")->capture_default_str();
  cmd->add_option("--json-schema", a->json_schema,
                  "A JSON schema file every request's output must follow (structured outputs; "
                  "needs --tokenizer)");
  cmd->callback([a, cmd] {
    OfflineArgs args = *a;
    apply_offline_gpu_defaults(*cmd, args);
    run_throughput_cmd(args);
  });
}

void register_latency(CLI::App& bench) {
  auto a = std::make_shared<OfflineArgs>();
  a->data.opts.input_len = 512;
  a->data.opts.output_len = 256;
  CLI::App* cmd = bench.add_subcommand(
      "latency", "In-process single-request latency (no HTTP): prefill tok/s and decode tok/s");
  cmd->footer(
      "prefill tok/s = prompt tokens / time to the first generated token; decode tok/s = "
      "(generated tokens - 1) / (end-to-end - time to first token).");
  add_engine_flags(cmd, *a);
  cmd->add_option("--input-len", a->data.opts.input_len, "Prompt tokens (random ids)")
      ->capture_default_str();
  cmd->add_option("--output-len", a->data.opts.output_len, "Tokens to generate")
      ->capture_default_str();
  cmd->add_option("--num-iters", a->num_iters, "Measured iterations")->capture_default_str();
  cmd->add_option("--num-warmups", a->num_warmups, "Iterations run first and not counted")
      ->capture_default_str();
  cmd->add_option("--dataset-seed", a->dataset_seed, "Seed of the random prompts")
      ->capture_default_str();
  a->data.opts.name.clear();
  cmd->add_option("--dataset,--dataset-name", a->data.opts.name,
                  "A .jsonl file of prompts ({\"prompt\": ..., \"max_tokens\": ...}) run in turn "
                  "instead of random ids (encoded by --tokenizer, default the model's)");
  cmd->add_option("--tokenizer", a->model.args.model.tokenizer,
                  "Tokenizer directory for --dataset (default: the model directory)");
  cmd->callback([a] { run_latency_cmd(*a); });
}

}  // namespace

void register_bench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench",
                                       "Benchmarks: serve (any OpenAI-compatible server), soak, "
                                       "overload, throughput, latency, perplexity");
  bench->require_subcommand(1);
  register_bench_serve(*bench);
  register_throughput(*bench);
  register_latency(*bench);
  register_perplexity(*bench);
  register_bench_soak(*bench);
  register_bench_overload(*bench);
}

}  // namespace inferd::cli
