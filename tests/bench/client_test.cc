// The load generator against the in-test fake OpenAI server: timing, errors, arrivals,
// concurrency limits and 1,000 concurrent streams.
#include <gtest/gtest.h>

#include <time.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "bench/client.h"
#include "bench/fake_server.h"
#include "bench/metrics.h"
#include "bench/report.h"
#include "bench/stats.h"

namespace inferd::bench {
namespace {

using testing::FakeBehavior;
using testing::FakeOpenAIServer;

// Scheduling slack allowed above a server-side delay (the machine is shared and busy).
constexpr double kSlack = 0.015;

std::vector<BenchRequest> requests(size_t n, const std::string& prompt = "hi", int32_t out = 8) {
  std::vector<BenchRequest> r(n);
  for (auto& q : r) {
    q.prompt = prompt;
    q.prompt_len = 3;
    q.output_len = out;
  }
  return r;
}

ServeOptions options(const FakeOpenAIServer& s) {
  ServeOptions o;
  o.base = parse_url(s.url());
  o.model = "fake";
  return o;
}

// One request first, so that thread start-up and first-connection costs of the fake server do
// not land in the measured run (the machine is shared and busy).
void warm_up(const FakeOpenAIServer& s) {
  ServeOptions o = options(s);
  BenchRequest r;
  r.prompt = "warm";
  r.output_len = 1;
  run_serving(o, {r});
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}

TEST(Client, MeasuresTtftItlTpotAndE2e) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.ttft_s = 0.1;
    b.chunks = 10;
    b.itl_s = 0.02;
    return b;
  });
  warm_up(server);
  const RunResult run = run_serving(options(server), requests(5));
  ASSERT_EQ(run.requests.size(), 5u);
  for (const auto& r : run.requests) {
    ASSERT_TRUE(r.success) << r.error_kind << ": " << r.error;
    EXPECT_GE(r.ttft_s, 0.1 - 0.001);
    EXPECT_LE(r.ttft_s, 0.1 + kSlack);
    ASSERT_EQ(r.itl_s.size(), 9u);
    EXPECT_EQ(r.chunks, 10);
    EXPECT_TRUE(r.usage_reported);
    EXPECT_EQ(r.output_tokens, 10);
    EXPECT_EQ(r.prompt_tokens, 7);  // the server's usage
    EXPECT_NEAR(mean(r.itl_s), 0.02, 0.003);
    for (double g : r.itl_s) EXPECT_LE(g, 0.02 + kSlack);
    // The server's timers drift a little per chunk; E2E is TTFT plus the gaps plus the tail (the
    // usage chunk and [DONE]: 3.1 ms once in a clean README run beside a fuzzer, ctest -j2).
    double sum = r.ttft_s;
    for (double g : r.itl_s) sum += g;
    EXPECT_NEAR(r.e2e_s, sum, 0.005);
    EXPECT_GE(r.e2e_s, 0.1 + 9 * 0.02 - 0.001);
    EXPECT_LE(r.e2e_s, 0.1 + 9 * 0.02 + 3 * kSlack);
    ASSERT_TRUE(r.tpot_s());
    EXPECT_NEAR(*r.tpot_s(), 0.02, 0.003);
  }
  const BenchMetrics m = compute_metrics(run, MetricOptions{});
  EXPECT_EQ(m.completed, 5u);
  EXPECT_EQ(m.total_output_tokens, 50);
  EXPECT_EQ(m.itl_ms.count, 45u);
  EXPECT_NEAR(m.itl_ms.at(50), 20, 3);
  EXPECT_NEAR(m.ttft_ms.mean, 100, kSlack * 1e3);
  EXPECT_EQ(server.requests(), 6u);
}

TEST(Client, TpotUsesUsageTokensWhileItlUsesChunks) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.ttft_s = 0.05;
    b.chunks = 10;
    b.itl_s = 0.02;
    b.tokens_per_chunk = 2;  // 20 tokens in 10 chunks
    return b;
  });
  warm_up(server);
  const RunResult run = run_serving(options(server), requests(3));
  for (const auto& r : run.requests) {
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.output_tokens, 20);
    EXPECT_EQ(r.chunks, 10);
    EXPECT_NEAR(mean(r.itl_s), 0.02, 0.003);
    ASSERT_TRUE(r.tpot_s());
    EXPECT_DOUBLE_EQ(*r.tpot_s(), (r.e2e_s - r.ttft_s) / 19.0);
    EXPECT_NEAR(*r.tpot_s(), 9 * 0.02 / 19.0, 0.002);
  }
}

TEST(Client, WithoutUsageCountsChunks) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.chunks = 6;
    b.tokens_per_chunk = 3;
    return b;
  });
  ServeOptions o = options(server);
  o.include_usage = false;  // the server sends usage only when asked
  o.api_key = "sk-test";
  const RunResult run = run_serving(o, requests(2));
  for (const auto& a : server.authorizations()) EXPECT_EQ(a, "Bearer sk-test");
  for (const auto& r : run.requests) {
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_FALSE(r.usage_reported);
    EXPECT_EQ(r.output_tokens, 6);
    EXPECT_EQ(r.prompt_tokens, 3);  // the dataset's count
  }
  for (const auto& b : server.bodies()) EXPECT_FALSE(b.contains("stream_options"));
}

TEST(Client, PrefixCacheHitRateFromTheServersCachedTokens) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t i) {
    FakeBehavior b;
    b.chunks = 2;
    b.cached_tokens = i % 2 == 0 ? 0 : 7;  // every other request fully cached (7 prompt tokens)
    return b;
  });
  const RunResult run = run_serving(options(server), requests(4));
  int64_t cached = 0;
  for (const auto& r : run.requests) {
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_TRUE(r.cached_tokens == 0 || r.cached_tokens == 7) << r.cached_tokens;
    cached += r.cached_tokens;
  }
  EXPECT_EQ(cached, 14);
  const BenchMetrics m = compute_metrics(run, MetricOptions{});
  ASSERT_TRUE(m.prefix_cache_hit_rate().has_value());
  EXPECT_DOUBLE_EQ(*m.prefix_cache_hit_rate(), 0.5);
  EXPECT_NE(format_report(m, MetricOptions{}).find("Prefix cache hit rate (%):"),
            std::string::npos);
  EXPECT_DOUBLE_EQ(metrics_to_json(m)["prefix_cache_hit_rate"].get<double>(), 0.5);
  // A server that does not report cached tokens: no rate.
  FakeOpenAIServer plain([](const nlohmann::json&, size_t) { return FakeBehavior{}; });
  const BenchMetrics m2 =
      compute_metrics(run_serving(options(plain), requests(2)), MetricOptions{});
  EXPECT_FALSE(m2.prefix_cache_hit_rate().has_value());
  EXPECT_EQ(format_report(m2, MetricOptions{}).find("Prefix cache"), std::string::npos);
}

TEST(Client, PercentilesOfKnownDelays) {
  // Request k waits 20 * (k + 1) ms for its first chunk.
  FakeOpenAIServer server([](const nlohmann::json& body, size_t) {
    FakeBehavior b;
    const std::string p = body.value("prompt", "");
    b.ttft_s = p == "warm" ? 0.0 : 0.02 * double(std::stoi(p) + 1);
    b.chunks = 2;
    return b;
  });
  warm_up(server);
  std::vector<BenchRequest> reqs = requests(10);
  for (size_t k = 0; k < reqs.size(); ++k) reqs[k].prompt = std::to_string(k);
  const RunResult run = run_serving(options(server), reqs);
  MetricOptions mo;
  mo.percentiles = {50, 90, 99};
  const BenchMetrics m = compute_metrics(run, mo);
  ASSERT_EQ(m.completed, 10u);
  // numpy.percentile([20, 40, ..., 200], p): 110, 182, 198.2.
  EXPECT_GE(m.ttft_ms.at(50), 110 - 1);
  EXPECT_LE(m.ttft_ms.at(50), 110 + kSlack * 1e3);
  EXPECT_GE(m.ttft_ms.at(90), 182 - 1);
  EXPECT_LE(m.ttft_ms.at(90), 182 + kSlack * 1e3);
  EXPECT_GE(m.ttft_ms.at(99), 198.2 - 1);
  EXPECT_LE(m.ttft_ms.at(99), 198.2 + kSlack * 1e3);
  EXPECT_GE(m.ttft_ms.min, 20 - 1);
  EXPECT_LE(m.ttft_ms.max, 200 + kSlack * 1e3);
}

TEST(Client, ChatEndpointSkipsTheRoleChunk) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.ttft_s = 0.08;
    b.chunks = 4;
    b.itl_s = 0.01;
    return b;
  });
  warm_up(server);
  ServeOptions o = options(server);
  o.endpoint = "/v1/chat/completions";
  const RunResult run = run_serving(o, requests(2, "hello"));
  for (const auto& r : run.requests) {
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.chunks, 4);
    EXPECT_GE(r.ttft_s, 0.08 - 0.001);  // not the immediate role-only chunk
  }
  for (const auto& b : server.bodies()) {
    if (b.contains("prompt") && b["prompt"] == "warm") continue;
    ASSERT_TRUE(b.contains("messages"));
    EXPECT_EQ(b["messages"][0]["content"], "hello");
    EXPECT_FALSE(b.contains("prompt"));
  }
}

TEST(Client, RequestBodies) {
  ServeOptions o;
  o.model = "m";
  BenchRequest r;
  r.prompt = "p";
  r.output_len = 17;
  nlohmann::json b = nlohmann::json::parse(build_request_body(o, r));
  EXPECT_EQ(b["model"], "m");
  EXPECT_EQ(b["prompt"], "p");
  EXPECT_EQ(b["max_tokens"], 17);
  EXPECT_EQ(b["min_tokens"], 17);
  EXPECT_EQ(b["ignore_eos"], true);
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["temperature"], 0.0);
  o.force_output_len = false;
  o.temperature.reset();
  o.extra_body = {{"top_k", 5}, {"temperature", 0.7}};
  b = nlohmann::json::parse(build_request_body(o, r));
  EXPECT_FALSE(b.contains("min_tokens"));
  EXPECT_FALSE(b.contains("ignore_eos"));
  EXPECT_EQ(b["top_k"], 5);
  EXPECT_EQ(b["temperature"], 0.7);
  o.endpoint = "/v1/chat/completions";
  r.messages = nlohmann::json::array({{{"role", "user"}, {"content", "x"}}});
  b = nlohmann::json::parse(build_request_body(o, r));
  EXPECT_EQ(b["messages"], *r.messages);
}

TEST(Client, ErrorsAreCountedByKindAndTheRunContinues) {
  FakeOpenAIServer server([](const nlohmann::json& body, size_t) {
    const std::string p = body.value("prompt", "");
    FakeBehavior b;
    b.chunks = 3;
    b.itl_s = 0.002;
    if (p == "500") b.status = 500;
    if (p == "429") b.status = 429;
    if (p == "drop") b.drop_after_chunks = 1;
    if (p == "hang") b.hang = true;
    if (p == "badjson") b.bad_json = true;
    if (p == "nodone") b.send_done = false;
    if (p == "errevent") b.error_event = true;
    if (p == "close") b.close_connection = true;
    if (p == "empty") b.chunks = 0;  // EOS first: no text, a finish chunk, usage, [DONE]
    if (p == "nochoices") {
      b.chunks = 0;
      b.finish_chunk = false;
    }
    return b;
  });
  std::vector<BenchRequest> reqs;
  for (const char* p : {"ok", "500", "429", "drop", "hang", "badjson", "nodone", "errevent",
                        "close", "ok", "500", "ok", "empty", "nochoices"}) {
    BenchRequest r;
    r.prompt = p;
    r.output_len = 3;
    reqs.push_back(r);
  }
  ServeOptions o = options(server);
  o.request_timeout_s = 0.5;
  for (int conc : {0, 2}) {  // all at once, and reusing kept-alive connections
    o.max_concurrency = conc;
    const auto t0 = std::chrono::steady_clock::now();
    const RunResult run = run_serving(o, reqs);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(took, 5.0);
    const BenchMetrics m = compute_metrics(run, MetricOptions{});
    EXPECT_EQ(m.completed, 5u) << conc;  // ok x3, close, empty
    EXPECT_EQ(m.failed, 9u);
    EXPECT_EQ(m.errors.count("http_500") ? m.errors.at("http_500") : 0u, 2u);
    EXPECT_EQ(m.errors.count("http_429") ? m.errors.at("http_429") : 0u, 1u);
    EXPECT_EQ(m.errors.count("disconnect") ? m.errors.at("disconnect") : 0u, 1u);
    EXPECT_EQ(m.errors.count("timeout") ? m.errors.at("timeout") : 0u, 1u);
    EXPECT_EQ(m.errors.count("bad_stream") ? m.errors.at("bad_stream") : 0u, 4u);
    const RequestResult& empty = run.requests[12];
    EXPECT_TRUE(empty.success);
    EXPECT_EQ(empty.chunks, 0);
    EXPECT_EQ(empty.output_tokens, 0);  // the fake's usage: 0 chunks x 1 token
    EXPECT_GT(empty.ttft_s, 0);
    EXPECT_FALSE(empty.tpot_s());
    EXPECT_NE(run.requests[13].error.find("no choices"), std::string::npos);
    EXPECT_EQ(run.requests[1].http_status, 500);
    EXPECT_NE(run.requests[1].error.find("fake failure"), std::string::npos);
    EXPECT_NE(run.requests[6].error.find("[DONE]"), std::string::npos);
    EXPECT_NE(run.requests[7].error.find("engine failed"), std::string::npos);
    if (conc > 0) {
      EXPECT_LE(run.peak_in_flight, conc);
    }
  }
}

TEST(Client, ConnectErrorsAreCounted) {
  uint16_t port = 0;
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  ServeOptions o;
  o.base = parse_url("http://127.0.0.1:" + std::to_string(port));
  o.model = "x";
  const RunResult run = run_serving(o, requests(4));
  const BenchMetrics m = compute_metrics(run, MetricOptions{});
  EXPECT_EQ(m.completed, 0u);
  EXPECT_EQ(m.errors.at("connect"), 4u);
}

TEST(Client, MaxConcurrencyIsRespected) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.ttft_s = 0.02;
    b.chunks = 3;
    b.itl_s = 0.005;
    return b;
  });
  ServeOptions o = options(server);
  o.max_concurrency = 3;
  const RunResult run = run_serving(o, requests(24));
  EXPECT_EQ(run.peak_in_flight, 3);
  EXPECT_LE(server.peak_streams(), 3);
  EXPECT_EQ(compute_metrics(run, MetricOptions{}).completed, 24u);
  // 8 waves of >= 30 ms each.
  EXPECT_GE(run.duration_s, 8 * 0.03 - 0.005);
}

TEST(Client, PoissonArrivals) {
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.chunks = 1;
    return b;
  });
  ServeOptions o = options(server);
  o.request_rate = 100;
  o.seed = 3;
  const RunResult run = run_serving(o, requests(300));
  ASSERT_EQ(compute_metrics(run, MetricOptions{}).completed, 300u);
  std::vector<double> gaps;
  for (size_t i = 1; i < run.requests.size(); ++i)
    gaps.push_back(run.requests[i].start_s - run.requests[i - 1].start_s);
  const Summary s = summarize(gaps, std::vector<double>{50});
  // Exponential with mean 10 ms: standard deviation equal to the mean, median 10 ln 2 ms.
  EXPECT_NEAR(s.mean, 0.01, 0.0015);
  EXPECT_NEAR(s.stddev / s.mean, 1.0, 0.2);
  EXPECT_NEAR(s.at(50), 0.01 * std::log(2.0), 0.002);
  EXPECT_NEAR(run.duration_s, 3.0, 0.6);
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// The client is not the bottleneck: one thread drives 1,000 concurrent streams (20 chunks each,
// 20,000 chunks in about 1.5 s) against a trivial local server (one thread as well) on this
// 2-core machine. The machine is shared with other work, so the proof is the client thread's
// own CPU time: well under the time the streams last, i.e. it keeps up in real time.
TEST(Client, Sustains1000ConcurrentStreams) {
  constexpr int kStreams = 1000;
  constexpr double kStreamSeconds = 0.5 + 19 * 0.05;
  FakeOpenAIServer server([](const nlohmann::json&, size_t) {
    FakeBehavior b;
    b.ttft_s = 0.5;
    b.chunks = 20;
    b.itl_s = 0.05;
    return b;
  });
  ServeOptions o = options(server);
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_s();  // run_serving runs on this thread
  const RunResult run = run_serving(o, requests(kStreams));
  const double cpu = thread_cpu_s() - cpu0;
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const BenchMetrics m = compute_metrics(run, MetricOptions{});
  EXPECT_EQ(m.completed, size_t(kStreams)) << (m.errors.empty() ? "" : m.errors.begin()->first);
  EXPECT_EQ(run.peak_in_flight, kStreams);
  EXPECT_EQ(server.peak_streams(), kStreams);  // all open at the same time
  EXPECT_EQ(m.total_output_tokens, 20 * kStreams);
  EXPECT_EQ(m.itl_ms.count, size_t(19 * kStreams));
  EXPECT_LT(cpu, 0.6 * kStreamSeconds) << "client CPU time for 20,000 chunks";
  // Loose bounds on what a starved machine can distort.
  EXPECT_LT(took, kStreamSeconds + 10.0);
  EXPECT_GE(m.ttft_ms.min, 500 - 1);
  EXPECT_GE(m.itl_ms.mean, 50 - 2);
  EXPECT_LT(m.itl_ms.mean, 50 + 50);
  std::printf(
      "1000 streams: client thread CPU %.3f s (%.1f us per chunk), %.2f s wall; TTFT p50 %.1f "
      "ms p99 %.1f ms, ITL mean %.1f ms p99 %.1f ms\n",
      cpu, cpu / (20.0 * kStreams) * 1e6, took, m.ttft_ms.at(50), m.ttft_ms.at(99), m.itl_ms.mean,
      m.itl_ms.at(99));
}

}  // namespace
}  // namespace inferd::bench
