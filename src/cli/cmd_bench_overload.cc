// `inferd bench overload`: a ramp to the sustainable rate, a burst at a multiple of it, and the
// checks of bench/overload.h; exit status 1 when one fails.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>

#include "bench/counters.h"
#include "bench/overload.h"
#include "bench/report.h"
#include "cli/commands.h"
#include "core/error.h"

namespace inferd::cli {

namespace {

using namespace inferd::bench;

struct OverloadArgs {
  OverloadOptions o;
  std::string base_url = "http://127.0.0.1:8000";
  std::string endpoint = "/v1/completions";
  std::string ramp_rates = "1,2,4,8,16,32";
  DatasetOptions data;
  std::string json_path;
  OverloadArgs() {
    data.name = "random";
    data.num_prompts = 200;
    data.input_len = 128;
    data.output_len = 32;
    data.range_ratio = 0.5;
  }
};

std::vector<double> parse_rates(const std::string& s) {
  std::vector<double> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || !(v > 0)) fail("--ramp-rates '{}': '{}' is not a positive rate", s, item);
    out.push_back(v);
  }
  return out;
}

nlohmann::json step_json(const OverloadStep& s) {
  return {{"label", s.label},
          {"rate", s.rate},
          {"requests", s.requests},
          {"ok", s.ok},
          {"shed", s.shed},
          {"shed_without_retry_after", s.shed_without_retry_after},
          {"server_errors", s.server_errors},
          {"other_failures", s.other_failures},
          {"ttft_p50_ms", s.ttft_p50_ms},
          {"ttft_p99_ms", s.ttft_p99_ms},
          {"goodput", s.goodput}};
}

void run_overload_cmd(OverloadArgs& a) {
  ServeOptions& so = a.o.serve;
  so.base = parse_url(a.base_url);
  so.endpoint = a.endpoint.empty() || a.endpoint[0] != '/' ? "/" + a.endpoint : a.endpoint;
  if (so.api_key.empty())
    if (const char* k = std::getenv("OPENAI_API_KEY")) so.api_key = k;
  if (so.model.empty()) so.model = discover_model(so.base, so.api_key);
  a.o.ramp_rates = parse_rates(a.ramp_rates);
  RemoteTokenCounter counter(so.base, so.api_key, so.model);
  a.o.pool = make_dataset(a.data, &counter);
  const OverloadReport r = run_overload(a.o);
  std::printf("%s", format_overload_report(r, a.o).c_str());
  std::fflush(stdout);
  if (!a.json_path.empty()) {
    nlohmann::json j = {
        {"ramp", nlohmann::json::array()},
        {"sustainable", r.sustainable ? nlohmann::json(*r.sustainable) : nullptr},
        {"ttft_p99_1x_ms", r.ttft_p99_1x_ms},
        {"recovery_s", r.recovery_s ? nlohmann::json(*r.recovery_s) : nullptr},
        {"rss_bytes", {{"before", r.rss_before}, {"peak", r.rss_peak}, {"after", r.rss_after}}},
        {"problems", r.problems},
        {"passed", r.passed()}};
    for (const OverloadStep& s : r.ramp) j["ramp"].push_back(step_json(s));
    if (r.burst) j["burst"] = step_json(*r.burst);
    write_text_file(a.json_path, j.dump(1) + "\n");
  }
  if (!r.passed()) fail("bench overload failed: {}", r.problems.front());
}

}  // namespace

void register_bench_overload(CLI::App& bench) {
  auto a = std::make_shared<OverloadArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "overload",
      "Find the sustainable request rate by a ramp, then send a multiple of it: the server must "
      "shed with 429 + Retry-After, keep the admitted requests' TTFT p99 bounded and its memory "
      "flat, and recover after the burst. Exits 1 when it does not");
  cmd->footer(
      "Sustainable: the highest ramp rate whose TTFT p99 meets --slo-ttft-ms, with under 1 % "
      "shed and goodput (requests/s meeting the SLO over the arrival window) still rising by 5 "
      "%. Recovery: probes from the burst's last arrival until one's TTFT is at most the TTFT "
      "p99 at the sustainable rate. Streams ask ignore_eos and min_tokens as `bench serve` does.");
  OverloadOptions& o = a->o;
  cmd->add_option("--base-url", a->base_url, "Server address")->capture_default_str();
  cmd->add_option("--endpoint", a->endpoint, "/v1/completions or /v1/chat/completions")
      ->capture_default_str();
  cmd->add_option("--model", o.serve.model, "Model name (default: the first of /v1/models)");
  cmd->add_option("--api-key", o.serve.api_key, "Bearer token (default: $OPENAI_API_KEY)");
  cmd->add_option("--num-prompts", a->data.num_prompts, "Distinct random prompts (cycled)")
      ->capture_default_str();
  cmd->add_option("--input-len", a->data.input_len, "Prompt tokens")->capture_default_str();
  cmd->add_option("--output-len", a->data.output_len, "Tokens generated")->capture_default_str();
  cmd->add_option("--range-ratio", a->data.range_ratio, "Lengths uniform in len*(1 +- r)")
      ->capture_default_str();
  cmd->add_option("--seed", a->data.seed, "Seed of the prompts")->capture_default_str();
  cmd->add_option("--ramp-rates", a->ramp_rates, "Ascending requests/s of the ramp")
      ->capture_default_str();
  cmd->add_option("--step-duration", o.step_s, "Seconds of arrivals per ramp step")
      ->capture_default_str();
  cmd->add_option("--slo-ttft-ms", o.slo_ttft_ms, "TTFT p99 a sustainable step must meet")
      ->capture_default_str();
  cmd->add_option("--factor", o.factor, "Burst rate as a multiple of the sustainable rate")
      ->capture_default_str();
  cmd->add_option("--burst-duration", o.burst_s, "Seconds of arrivals at the burst rate")
      ->capture_default_str();
  cmd->add_option("--ttft-factor", o.ttft_factor,
                  "Admitted TTFT p99 bound during the burst, times the value at 1x")
      ->capture_default_str();
  cmd->add_option("--recovery-bound", o.recovery_bound_s,
                  "Seconds after the burst by which a probe's TTFT must be normal")
      ->capture_default_str();
  cmd->add_option("--max-rss-growth", o.max_rss_growth_pct,
                  "Largest RSS peak over the RSS before the ramp (percent)")
      ->capture_default_str();
  cmd->add_option("--request-timeout", o.serve.request_timeout_s, "Seconds before a timeout")
      ->capture_default_str();
  cmd->add_option("--json", a->json_path, "Write the curve and the verdict as JSON");
  cmd->callback([a] { run_overload_cmd(*a); });
}

}  // namespace inferd::cli
