// `inferd bench` end to end through its command line: serve against the fake OpenAI server
// (sweep, warm-ups, JSON, SVG, local and remote tokenizers), throughput and latency on a tiny
// dummy model.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "bench/fake_server.h"
#include "bench/xml_check.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace inferd::cli {
void register_bench(CLI::App& app);
}

namespace inferd::bench {
namespace {

using testing::FakeBehavior;
using testing::FakeOpenAIServer;

void run_cli(std::vector<std::string> args) {
  CLI::App app{"inferd"};
  app.require_subcommand(1);
  inferd::cli::register_bench(app);
  std::vector<const char*> argv = {"inferd"};
  for (const auto& s : args) argv.push_back(s.c_str());
  app.parse(int(argv.size()), const_cast<char**>(argv.data()));
}

std::string tmp(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("inferd_bench_cli_" + name)).string();
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

FakeOpenAIServer::Policy quick() {
  return [](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.ttft_s = 0.002;
    b.chunks = 4;
    b.itl_s = 0.001;
    return b;
  };
}

TEST(BenchCli, ServeSweepWithLocalTokenizerWritesJsonAndSvg) {
  FakeOpenAIServer server(quick());
  const std::string json = tmp("sweep.json"), svg = tmp("sweep.svg");
  const std::string tok = std::string(INFERD_TEST_DATA_DIR) + "/tokenizers/llama3";
  run_cli({"bench",         "serve", "--base-url",   server.url(), "--model",       "m",
           "--tokenizer",   tok,     "--dataset",    "random",     "--num-prompts", "12",
           "--input-len",   "40",    "--output-len", "5",          "--sweep-rates", "200,inf",
           "--num-warmups", "3",     "--json",       json,         "--plot",        svg,
           "--slo-ttft-ms", "1000",  "--no-progress"});
  EXPECT_EQ(server.requests(), 3u + 2 * 12u);
  EXPECT_EQ(server.tokenize_calls(), 0u);
  const nlohmann::json j = read_json(json);
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["metrics"]["request_rate"], 200.0);
  EXPECT_EQ(j["runs"][1]["metrics"]["request_rate"], "inf");
  for (const auto& run : j["runs"]) {
    EXPECT_EQ(run["metrics"]["completed"], 12);
    EXPECT_EQ(run["metrics"]["good_requests"], 12);
    ASSERT_EQ(run["requests"].size(), 12u);
    for (const auto& r : run["requests"]) {
      EXPECT_TRUE(r["success"].get<bool>());
      EXPECT_EQ(r["itl_ms"].size(), 3u);
      EXPECT_EQ(r["expected_output_tokens"], 5);
    }
  }
  EXPECT_EQ(j["config"]["model"], "m");
  // Prompts are 40 llama3 tokens (BOS included) and ask for exactly 5 output tokens.
  const Tokenizer t = Tokenizer::from_dir(tok);
  for (const auto& b : server.bodies()) {
    EXPECT_EQ(t.encode(b["prompt"].get<std::string>(), true).size(), 40u);
    EXPECT_EQ(b["max_tokens"], 5);
    EXPECT_EQ(b["min_tokens"], 5);
    EXPECT_EQ(b["ignore_eos"], true);
    EXPECT_EQ(b["model"], "m");
  }
  // Warm-ups (sent first) use prompts of their own: the measured ones stay out of any cache.
  const auto bodies = server.bodies();
  std::set<std::string> measured;
  for (size_t i = 3; i < bodies.size(); ++i) measured.insert(bodies[i]["prompt"]);
  EXPECT_EQ(measured.size(), 12u);  // both runs send the same 12 prompts
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(measured.count(bodies[i]["prompt"]), 0u);
  std::string why;
  const std::string s = read_text(svg);
  EXPECT_TRUE(testing::well_formed_xml(s, &why)) << why;
  EXPECT_NE(s.find("<polyline"), std::string::npos);
  std::filesystem::remove(json);
  std::filesystem::remove(svg);
}

TEST(BenchCli, ServeDiscoversTheModelAndTokenizesOnTheServer) {
  FakeOpenAIServer server(quick());
  const std::string json = tmp("remote.json");
  run_cli({"bench",           "serve",
           "--base-url",      server.url(),
           "--dataset",       "shared-prefix",
           "--num-prompts",   "6",
           "--prefix-len",    "30",
           "--num-prefixes",  "2",
           "--input-len",     "10",
           "--output-len",    "3",
           "--endpoint",      "/v1/chat/completions",
           "--json",          json,
           "--no-ignore-eos", "--no-progress"});
  EXPECT_GT(server.tokenize_calls(), 0u);
  const nlohmann::json j = read_json(json);
  EXPECT_EQ(j["config"]["model"], "fake-model");
  EXPECT_EQ(j["runs"][0]["metrics"]["completed"], 6);
  for (const auto& b : server.bodies()) {
    EXPECT_EQ(b["model"], "fake-model");
    EXPECT_FALSE(b.contains("ignore_eos"));
    // The fake /tokenize counts words plus a BOS: 30 + 10 tokens = 39 words.
    std::istringstream in(b["messages"][0]["content"].get<std::string>());
    std::string w;
    int words = 0;
    while (in >> w) ++words;
    EXPECT_EQ(words, 39);
  }
  std::filesystem::remove(json);
}

TEST(BenchCli, ServeSeedChangesThePrompts) {
  FakeOpenAIServer server(quick());
  auto prompts = [&](const std::string& seed) {
    const size_t before = server.bodies().size();
    run_cli({"bench", "serve", "--base-url", server.url(), "--model", "m", "--dataset", "random",
             "--num-prompts", "4", "--input-len", "20", "--output-len", "2", "--seed", seed,
             "--no-progress"});
    std::set<std::string> out;
    const auto bodies = server.bodies();
    for (size_t i = before; i < bodies.size(); ++i) out.insert(bodies[i]["prompt"]);
    return out;
  };
  const auto a = prompts("0"), b = prompts("0"), c = prompts("1");
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(BenchCli, ServeProgressLine) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.chunks = 3;
    b.itl_s = 0.3;  // the run lasts over 0.5 s: at least one progress tick while it runs
    return b;
  });
  ::testing::internal::CaptureStderr();
  run_cli({"bench", "serve", "--base-url", server.url(), "--model", "m", "--dataset", "random",
           "--num-prompts", "5", "--input-len", "8", "--output-len", "3"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  // Not a terminal here: one line at the end (a terminal gets a line redrawn in place).
  EXPECT_NE(err.find("5/5 done, 0 failed, 0 in flight"), std::string::npos) << err;
  EXPECT_NE(err.find("output tok/s"), std::string::npos) << err;
}

TEST(BenchCli, ServeRejectsBadFlags) {
  FakeOpenAIServer server(quick());
  EXPECT_THROW(run_cli({"bench", "serve", "--base-url", server.url(), "--model", "m",
                        "--request-rate", "fast", "--no-progress"}),
               Error);
  EXPECT_THROW(run_cli({"bench", "serve", "--base-url", server.url(), "--model", "m",
                        "--sweep-rates", "1,,2", "--no-progress"}),
               Error);
  EXPECT_THROW(run_cli({"bench", "serve", "--base-url", "https://x", "--model", "m"}), Error);
  EXPECT_THROW(run_cli({"bench", "serve", "--base-url", server.url(), "--model", "m", "--dataset",
                        "nope", "--no-progress"}),
               Error);
}

TEST(BenchCli, HelpDefinesTheMetrics) {
  CLI::App app{"inferd"};
  inferd::cli::register_bench(app);
  const std::string help = app.get_subcommand("bench")->get_subcommand("serve")->help();
  EXPECT_NE(
      help.find("TPOT  time per output token, per request: (E2E - TTFT) / (output tokens - 1)"),
      std::string::npos)
      << help;
  EXPECT_NE(help.find("ITL   inter-token latency"), std::string::npos);
  EXPECT_NE(help.find("--slo-tpot-ms"), std::string::npos);
}

// `bench soak` exits non-zero (an Error) when answers fail its checks: the fake server streams
// one choice with no usage whatever was asked, so n > 1 and include_usage requests fail; the
// summary still goes to --json first.
TEST(BenchCli, SoakFailsAgainstAWrongServer) {
  FakeOpenAIServer server(quick());
  const std::string json_path = tmp("soak.json");
  EXPECT_THROW(run_cli({"bench", "soak", "--base-url", server.url(), "--num-requests", "30",
                        "--stream-share", "1", "--idle-timeout", "0.2", "--json", json_path,
                        "--no-progress"}),
               Error);
  const nlohmann::json j = read_json(json_path);
  EXPECT_EQ(j["num_requests"], 30);
  EXPECT_EQ(j["passed"], false);
  EXPECT_EQ(j["server_errors"], 0);
  EXPECT_EQ(j["gauges_after"]["idle"], false);  // the fake has no /metrics
  EXPECT_THROW(run_cli({"bench", "soak", "--base-url", server.url(), "--num-requests", "0",
                        "--no-progress"}),
               Error);
  std::filesystem::remove(json_path);
}

const std::string kTinyModel = std::string(INFERD_TEST_DATA_DIR) + "/goldens/qwen2";

TEST(BenchCli, ThroughputOnADummyModel) {
  const std::string json = tmp("throughput.json");
  run_cli({"bench",   "throughput",   kTinyModel, "--load-format", "dummy", "--dtype",
           "float32", "--dataset",    "random",   "--num-prompts", "8",     "--input-len",
           "16",      "--output-len", "4",        "--threads",     "1",     "--kv-cache-memory",
           "0.01",    "--json",       json});
  const nlohmann::json j = read_json(json);
  EXPECT_EQ(j["num_requests"], 8);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["prompt_tokens"], 8 * 16);
  EXPECT_EQ(j["output_tokens"], 8 * 4);
  EXPECT_GT(j["output_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["total_tokens_per_s"].get<double>(), j["output_tokens_per_s"].get<double>());
  // sharegpt-like lengths are clipped to the tiny model's 256-token context.
  run_cli({"bench", "throughput", kTinyModel, "--load-format", "dummy", "--dtype", "float32",
           "--num-prompts", "6", "--threads", "1", "--kv-cache-memory", "0.01", "--json", json});
  EXPECT_EQ(read_json(json)["num_requests"], 6);
  EXPECT_EQ(read_json(json)["failed"], 0);
  std::filesystem::remove(json);
}

TEST(BenchCli, LatencyOnADummyModel) {
  const std::string json = tmp("latency.json");
  run_cli({"bench",   "latency",       kTinyModel, "--load-format", "dummy", "--dtype",
           "float32", "--input-len",   "24",       "--output-len",  "6",     "--num-iters",
           "2",       "--num-warmups", "1",        "--threads",     "1",     "--kv-cache-memory",
           "0.01",    "--json",        json});
  const nlohmann::json j = read_json(json);
  ASSERT_EQ(j["iterations"].size(), 2u);
  for (const auto& it : j["iterations"]) {
    EXPECT_EQ(it["prompt_tokens"], 24);
    EXPECT_EQ(it["output_tokens"], 6);
    EXPECT_GT(it["prefill_tokens_per_s"].get<double>(), 0);
    EXPECT_GT(it["decode_tokens_per_s"].get<double>(), 0);
  }
  EXPECT_THROW(
      run_cli({"bench", "latency", kTinyModel, "--load-format", "dummy", "--input-len", "250",
               "--output-len", "10", "--threads", "1", "--kv-cache-memory", "0.01"}),
      Error);
  std::filesystem::remove(json);
}

TEST(BenchCli, LatencyOnQuotedPromptsWithNgramSpeculation) {
  // The demo model on bench/data/demo_quotes.jsonl (encoded by its own tokenizer), n-gram
  // speculation: the JSON carries the acceptance and the mean accepted length.
  const std::string json = tmp("latency_spec.json");
  const std::string demo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  run_cli({"bench", "latency", demo, "--dataset",
           std::string(INFERD_SOURCE_DIR) + "/bench/data/demo_quotes.jsonl", "--temperature", "0",
           "--num-iters", "2", "--num-warmups", "0", "--threads", "1", "--json", json,
           "--speculative-config",
           R"({"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3})"});
  const nlohmann::json j = read_json(json);
  ASSERT_EQ(j["iterations"].size(), 2u);
  EXPECT_EQ(j["iterations"][0]["output_tokens"], 256);
  EXPECT_GT(j["iterations"][0]["prompt_tokens"].get<int>(), 50);
  ASSERT_TRUE(j.contains("speculative")) << j.dump();
  EXPECT_GT(j["speculative"]["num_drafts"].get<int64_t>(), 0);
  EXPECT_GE(j["speculative"]["mean_accepted_length"].get<double>(), 1.0);
  EXPECT_THROW(run_cli({"bench", "latency", demo, "--dataset", "random", "--threads", "1"}), Error);
  std::filesystem::remove(json);
}

TEST(BenchCli, LatencyWithADraftModel) {
  // method draft_model, the demo model drafting for itself (every greedy draft is accepted): the
  // JSON carries the acceptance; a draft with another vocabulary is an error naming it.
  const std::string json = tmp("latency_draft.json");
  const std::string demo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  run_cli(
      {"bench", "latency", demo, "--input-len", "24", "--output-len", "16", "--temperature", "0",
       "--num-iters", "2", "--num-warmups", "0", "--threads", "1", "--json", json,
       "--speculative-config",
       R"({"method": "draft_model", "model": ")" + demo + R"(", "num_speculative_tokens": 3})"});
  const nlohmann::json j = read_json(json);
  ASSERT_TRUE(j.contains("speculative")) << j.dump();
  EXPECT_GT(j["speculative"]["num_drafts"].get<int64_t>(), 0);
  EXPECT_GT(j["speculative"]["mean_accepted_length"].get<double>(), 2.0);
  try {
    run_cli({"bench", "latency", demo, "--input-len", "24", "--output-len", "4", "--threads", "1",
             "--speculative-config",
             R"({"method": "draft_model", "model": ")" + std::string(INFERD_TEST_DATA_DIR) +
                 R"(/goldens/llama3", "num_speculative_tokens": 3})"});
    FAIL() << "a draft with another vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must share the target's vocabulary"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove(json);
}

}  // namespace
}  // namespace inferd::bench
