// `inferd bench soak`: randomised, checked requests against a running server (bench/soak.h); the
// exit status is 1 on any server error, lost request, failed check, busy gauges or RSS growth.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "bench/http_util.h"
#include "bench/report.h"
#include "bench/soak.h"
#include "cli/commands.h"
#include "core/error.h"

namespace inferd::cli {

namespace {

using namespace inferd::bench;

struct SoakArgs {
  SoakOptions o;
  std::string base_url = "http://127.0.0.1:8000";
  std::string json_path;
  bool no_progress = false;
};

nlohmann::json report_json(const SoakReport& r, const SoakOptions& o) {
  nlohmann::json statuses = nlohmann::json::object();
  for (const auto& [st, n] : r.by_status) statuses[std::to_string(st)] = n;
  auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nullptr; };
  const auto growth = r.rss_growth_pct();
  return {{"num_requests", r.num_requests},
          {"concurrency", o.concurrency},
          {"seed", o.seed},
          {"duration_s", r.duration_s},
          {"by_kind", r.by_kind},
          {"by_status", statuses},
          {"ok", r.ok},
          {"server_errors", r.server_errors},
          {"lost", r.lost},
          {"failed_checks", r.failed_checks},
          {"shed", r.shed},
          {"aborted", r.aborted},
          {"hostile_refused", r.hostile_refused},
          {"probe_repeats", r.probe_repeats},
          {"probe_mismatches", r.probe_mismatches},
          {"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"gauges_after",
           {{"running", opt(r.running)},
            {"waiting", opt(r.waiting)},
            {"kv_cache_usage_perc", opt(r.kv_usage)},
            {"idle", r.idle}}},
          {"rss_bytes",
           {{"base", r.rss_base},
            {"end", r.rss_end},
            {"peak", r.rss_peak},
            {"growth_pct", growth ? nlohmann::json(*growth) : nullptr},
            {"source", r.rss_source}}},
          {"failures", r.failures},
          {"passed", r.passed(o)}};
}

void run_soak_cmd(SoakArgs& a) {
  a.o.base = parse_url(a.base_url);
  if (a.o.api_key.empty())
    if (const char* k = std::getenv("OPENAI_API_KEY")) a.o.api_key = k;
  if (a.o.model.empty()) a.o.model = discover_model(a.o.base, a.o.api_key);
  a.o.progress = !a.no_progress;
  std::fprintf(stderr, "soak: %lld requests, %d connections, model %s at %s\n",
               (long long)a.o.num_requests, a.o.concurrency, a.o.model.c_str(), a.base_url.c_str());
  const SoakReport r = run_soak(a.o);
  std::printf("%s", format_soak_report(r, a.o).c_str());
  std::fflush(stdout);
  if (!a.json_path.empty()) write_text_file(a.json_path, report_json(r, a.o).dump(1) + "\n");
  if (!r.passed(a.o))
    fail(
        "bench soak failed: {} server errors, {} lost, {} failed checks, {} determinism "
        "mismatches, gauges {}",
        r.server_errors, r.lost, r.failed_checks, r.probe_mismatches, r.idle ? "idle" : "not idle");
}

}  // namespace

void register_bench_soak(CLI::App& bench) {
  auto a = std::make_shared<SoakArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "soak",
      "Randomised, checked requests against a running server: both routes, every sampling "
      "field, n, logprobs, stop strings, seeds, structured outputs, tools, streams (with and "
      "without usage), aborted streams, hostile bodies, slow readers. Exits 1 on any server "
      "error, lost request, failed check, busy gauges after the run or RSS growth");
  cmd->footer(
      "Checks: status (5xx never; hostile bodies 4xx with OpenAI's error JSON), JSON shape, n "
      "choices with one finish reason each, usage prompt + completion = total and completion <= "
      "n x max_tokens, logprob counts, structured outputs and tool calls that hold, the same "
      "seeded request giving the same text all through the run; afterwards /metrics' "
      "vllm:num_requests_running, vllm:num_requests_waiting and vllm:kv_cache_usage_perc back "
      "to 0 and process_resident_memory_bytes (else /proc/--server-pid) grown by at most "
      "--max-rss-growth percent since the warm-up share of the run had finished.");
  SoakOptions& o = a->o;
  SoakMix& m = o.mix;
  cmd->add_option("--base-url", a->base_url, "Server address, http://HOST:PORT[/PREFIX]")
      ->capture_default_str();
  cmd->add_option("--api-key", o.api_key, "Bearer token (default: $OPENAI_API_KEY)");
  cmd->add_option("--model", o.model, "Model name to send (default: the first of /v1/models)");
  cmd->add_option("--num-requests", o.num_requests, "Requests to send")->capture_default_str();
  cmd->add_option("--concurrency", o.concurrency, "Connections, each one request at a time")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of every request's parameters")->capture_default_str();
  cmd->add_option("--max-tokens", m.max_tokens, "Each request asks max_tokens in 1..this")
      ->capture_default_str();
  cmd->add_option("--chat-share", m.chat_share, "Share of requests on /v1/chat/completions")
      ->capture_default_str();
  cmd->add_option("--stream-share", m.stream_share, "Share of the plain requests streamed")
      ->capture_default_str();
  cmd->add_option("--abort-share", m.abort_share, "Share of streams closed by the client midway")
      ->capture_default_str();
  cmd->add_option("--hostile-share", m.hostile_share,
                  "Share of hostile bodies (malformed JSON, wrong types, huge values, unknown "
                  "model): each must be a 4xx")
      ->capture_default_str();
  cmd->add_option("--slow-share", m.slow_share, "Share of streams read slowly (20-200 ms a read)")
      ->capture_default_str();
  cmd->add_option("--determinism-share", m.determinism_share,
                  "Share of requests that repeat one of --num-probes fixed seeded requests")
      ->capture_default_str();
  cmd->add_option("--num-probes", m.num_probes, "Distinct seeded requests repeated")
      ->capture_default_str();
  cmd->add_option("--request-timeout", o.request_timeout_s,
                  "Seconds without progress before a request counts as lost")
      ->capture_default_str();
  cmd->add_option("--warmup-share", o.warmup_share,
                  "The RSS baseline is read once this share of the requests has finished")
      ->capture_default_str();
  cmd->add_option("--max-rss-growth", o.max_rss_growth_pct,
                  "Largest server RSS growth (percent) from the baseline to the end")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", o.idle_timeout_s,
                  "Seconds the gauges may take to drop to 0 after the last answer")
      ->capture_default_str();
  cmd->add_option("--server-pid", o.server_pid,
                  "PID of the server on this machine: RSS from /proc when /metrics has none");
  cmd->add_option("--json", a->json_path, "Write the summary as JSON to this file");
  cmd->add_flag("--no-progress", a->no_progress, "No progress lines on stderr");
  cmd->callback([a] { run_soak_cmd(*a); });
}

}  // namespace inferd::cli
