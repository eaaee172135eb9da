#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "bench/metrics.h"
#include "bench/report.h"
#include "bench/xml_check.h"

namespace inferd::bench {
namespace {

using testing::well_formed_xml;

size_t occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

RunResult fake_run(double rate, double ttft_ms, double itl_ms, int n) {
  RunResult run;
  run.request_rate = rate;
  run.duration_s = 10;
  for (int i = 0; i < n; ++i) {
    RequestResult r;
    r.index = size_t(i);
    r.success = i != 0;
    if (!r.success) {
      r.error_kind = "http_500";
      r.error = "boom";
      r.http_status = 500;
    } else {
      r.ttft_s = ttft_ms * 1e-3 * (1 + 0.1 * i);
      r.itl_s = {itl_ms * 1e-3, itl_ms * 1e-3};
      r.e2e_s = r.ttft_s + 2 * itl_ms * 1e-3;
      r.chunks = 3;
      r.output_tokens = 3;
      r.usage_reported = true;
      r.prompt_tokens = 100;
    }
    run.requests.push_back(r);
  }
  return run;
}

TEST(Report, TableJsonAndGoodput) {
  const RunResult run = fake_run(std::numeric_limits<double>::infinity(), 100, 20, 5);
  MetricOptions mo;
  mo.slo_ttft_ms = 125;
  const BenchMetrics m = compute_metrics(run, mo);
  EXPECT_EQ(m.completed, 4u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.errors.at("http_500"), 1u);
  EXPECT_EQ(m.total_input_tokens, 400);
  EXPECT_EQ(m.total_output_tokens, 12);
  EXPECT_DOUBLE_EQ(m.request_throughput, 0.4);
  EXPECT_DOUBLE_EQ(m.output_throughput, 1.2);
  EXPECT_DOUBLE_EQ(m.total_throughput, 41.2);
  // TTFTs 110, 120, 130, 140 ms: two are within 125 ms.
  EXPECT_EQ(m.good_requests, 2u);
  EXPECT_DOUBLE_EQ(*m.goodput, 0.2);
  EXPECT_NEAR(m.ttft_ms.mean, 125, 1e-9);
  EXPECT_NEAR(m.tpot_ms.mean, 20, 1e-9);  // (e2e - ttft) / (3 - 1)
  EXPECT_EQ(m.itl_ms.count, 8u);
  const std::string t = format_report(m, mo);
  EXPECT_NE(t.find("Successful requests:"), std::string::npos);
  EXPECT_NE(t.find("Request goodput (req/s):"), std::string::npos);
  EXPECT_NE(t.find("P99 TTFT (ms):"), std::string::npos);
  EXPECT_NE(t.find("http_500:"), std::string::npos);
  EXPECT_NE(t.find("inf"), std::string::npos);

  const nlohmann::json j = run_to_json(run, m);
  ASSERT_EQ(j["requests"].size(), 5u);
  EXPECT_FALSE(j["requests"][0]["success"].get<bool>());
  EXPECT_EQ(j["requests"][0]["error_kind"], "http_500");
  EXPECT_NEAR(j["requests"][1]["ttft_ms"].get<double>(), 110, 1e-9);
  EXPECT_EQ(j["requests"][1]["itl_ms"].size(), 2u);
  EXPECT_NEAR(j["requests"][1]["tpot_ms"].get<double>(), 20, 1e-9);
  EXPECT_EQ(j["metrics"]["request_rate"], "inf");
  EXPECT_NEAR(j["metrics"]["ttft_ms"]["p50"].get<double>(), 125, 1e-9);
  // The JSON round-trips through text.
  EXPECT_EQ(nlohmann::json::parse(j.dump()), j);
}

TEST(Report, MixedLongSplitsTpotOfShortAndLongPrompts) {
  RunResult run = fake_run(std::numeric_limits<double>::infinity(), 100, 20, 5);
  // Request 4 had a long prompt and slower tokens.
  run.requests[4].long_prompt = true;
  run.requests[4].e2e_s = run.requests[4].ttft_s + 2 * 0.050;
  MetricOptions mo;
  BenchMetrics m = compute_metrics(run, mo);
  EXPECT_FALSE(m.split_long);
  EXPECT_EQ(format_report(m, mo).find("short prompts"), std::string::npos);
  mo.split_long = true;
  m = compute_metrics(run, mo);
  EXPECT_TRUE(m.split_long);
  EXPECT_EQ(m.long_completed, 1u);
  EXPECT_EQ(m.short_tpot_ms.count, 3u);
  EXPECT_NEAR(m.short_tpot_ms.at(99), 20, 1e-9);
  EXPECT_NEAR(m.long_tpot_ms.at(99), 50, 1e-9);
  EXPECT_NEAR(m.tpot_ms.max, 50, 1e-9);
  const std::string t = format_report(m, mo);
  EXPECT_NE(t.find("P99 Short TPOT (ms):"), std::string::npos);
  EXPECT_NE(t.find("P99 Long TPOT (ms):"), std::string::npos);
  const nlohmann::json j = metrics_to_json(m);
  EXPECT_NEAR(j["short_tpot_ms"]["p99"].get<double>(), 20, 1e-9);
  EXPECT_NEAR(j["long_tpot_ms"]["p99"].get<double>(), 50, 1e-9);
}

TEST(Report, SweepSvgIsWellFormedAndHasOneLinePerPercentilePerPanel) {
  MetricOptions mo;
  std::vector<BenchMetrics> runs;
  for (double rate : {1.0, 2.0, 4.0, 8.0}) {
    RunResult run = fake_run(rate, 50 * rate, 10 + rate, 20);
    run.duration_s = 10 / rate;
    runs.push_back(compute_metrics(run, mo));
  }
  const std::string svg = render_sweep_svg(runs, mo, "sweep <test> & more");
  std::string why;
  EXPECT_TRUE(well_formed_xml(svg, &why)) << why;
  EXPECT_EQ(occurrences(svg, "<polyline"), 3u * mo.percentiles.size());
  EXPECT_EQ(occurrences(svg, "<circle"), 3u * mo.percentiles.size() * runs.size());
  EXPECT_NE(svg.find("sweep &lt;test&gt; &amp; more"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  const std::string path =
      (std::filesystem::temp_directory_path() / "inferd_bench_report_test.svg").string();
  write_text_file(path, svg);
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), svg);
  std::filesystem::remove(path);
  // The checker itself rejects broken documents.
  EXPECT_FALSE(well_formed_xml("<svg><g></svg>", &why));
  EXPECT_FALSE(well_formed_xml("<svg a=\"1></svg>", &why));
  EXPECT_FALSE(well_formed_xml("<svg>&bad;</svg>", &why));

  const std::string table = format_sweep_table(runs, mo);
  EXPECT_EQ(occurrences(table, "\n"), runs.size() + 2);
}

TEST(Report, SvgOfOneRunAndOfAllFailed) {
  MetricOptions mo;
  RunResult run = fake_run(1.0, 10, 1, 1);  // one request, failed
  const BenchMetrics m = compute_metrics(run, mo);
  std::string why;
  const std::string svg = render_sweep_svg({m}, mo, "x");
  EXPECT_TRUE(well_formed_xml(svg, &why)) << why;
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf\""), std::string::npos);
}

}  // namespace
}  // namespace inferd::bench
