// `bench overload` against fake servers: a step's figures from a run; a server that sheds without
// Retry-After fails; one that never sheds fails (the burst was not shed); one that sheds above a
// rate with Retry-After and keeps its TTFT passes.
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include "bench/fake_server.h"
#include "bench/overload.h"

namespace inferd::bench {
namespace {

using testing::FakeBehavior;
using testing::FakeOpenAIServer;

TEST(Overload, StepFigures) {
  RunResult run;
  for (int i = 0; i < 10; ++i) {
    RequestResult r;
    r.success = i < 6;
    r.ttft_s = i < 3 ? 0.1 : 0.5;
    r.http_status = i < 6 ? 200 : i < 9 ? 429 : 500;
    if (i == 7) r.retry_after = "1";
    run.requests.push_back(r);
  }
  const OverloadStep s = summarize_step("x", 5, run, 2.0, 200);
  EXPECT_EQ(s.requests, 10u);
  EXPECT_EQ(s.ok, 6u);
  EXPECT_EQ(s.shed, 3u);
  EXPECT_EQ(s.shed_without_retry_after, 2u);
  EXPECT_EQ(s.server_errors, 1u);
  EXPECT_DOUBLE_EQ(s.goodput, 1.5);  // 3 requests within 200 ms over 2 s
  EXPECT_DOUBLE_EQ(s.shed_share(), 0.3);
  EXPECT_NEAR(s.ttft_p99_ms, 500, 1e-9);
}

// Sheds (429) every request arriving when more than `limit` arrived in the last second.
FakeOpenAIServer::Policy shed_above(size_t limit) {
  struct State {
    std::mutex mu;
    std::deque<std::chrono::steady_clock::time_point> arrivals;
  };
  auto st = std::make_shared<State>();
  return [st, limit](const nlohmann::json& body, size_t) {
    FakeBehavior b;
    b.ttft_s = 0.005;
    b.chunks = 2;
    if (!body.is_object() || !body.contains("prompt")) return b;
    std::lock_guard lk(st->mu);
    const auto now = std::chrono::steady_clock::now();
    while (!st->arrivals.empty() && now - st->arrivals.front() > std::chrono::seconds(1))
      st->arrivals.pop_front();
    st->arrivals.push_back(now);
    if (st->arrivals.size() > limit) b.status = 429;
    return b;
  };
}

OverloadOptions options(const FakeOpenAIServer& fake) {
  OverloadOptions o;
  o.serve.base = parse_url(fake.url());
  o.serve.model = "m";
  for (int i = 0; i < 5; ++i) {
    BenchRequest r;
    r.prompt = "hello world " + std::to_string(i);
    r.prompt_len = 3;
    r.output_len = 2;
    o.pool.push_back(r);
  }
  o.ramp_rates = {3, 40};
  o.step_s = 3;
  o.burst_s = 3;
  o.factor = 5;
  o.slo_ttft_ms = 500;
  o.ttft_factor = 50;  // a fake's few ms are noise; this test is about shedding
  return o;
}

TEST(Overload, ShedWithoutRetryAfterFails) {
  FakeOpenAIServer fake(shed_above(12));  // the fake's 429 carries no Retry-After
  const OverloadOptions o = options(fake);
  const OverloadReport r = run_overload(o);
  ASSERT_TRUE(r.sustainable) << format_overload_report(r, o);
  EXPECT_EQ(*r.sustainable, 3);
  ASSERT_TRUE(r.burst);
  EXPECT_GT(r.burst->shed, 0u);
  EXPECT_EQ(r.burst->shed_without_retry_after, r.burst->shed);
  EXPECT_FALSE(r.passed());
  bool named = false;
  for (const std::string& p : r.problems) named |= p.find("Retry-After") != std::string::npos;
  EXPECT_TRUE(named) << format_overload_report(r, o);
  ASSERT_TRUE(r.recovery_s);
  EXPECT_LT(*r.recovery_s, 5);
}

TEST(Overload, NoSheddingFails) {
  FakeOpenAIServer fake(shed_above(1000000));
  OverloadOptions o = options(fake);
  o.ramp_rates = {3};
  const OverloadReport r = run_overload(o);
  ASSERT_TRUE(r.burst) << format_overload_report(r, o);
  EXPECT_EQ(r.burst->shed, 0u);
  EXPECT_FALSE(r.passed());
  EXPECT_NE(format_overload_report(r, o).find("not shed"), std::string::npos);
}

TEST(Overload, RefusesBadOptions) {
  FakeOpenAIServer fake(shed_above(10));
  OverloadOptions o = options(fake);
  o.ramp_rates = {4, 2};
  EXPECT_ANY_THROW(run_overload(o));
  o.ramp_rates = {2};
  o.factor = 1;
  EXPECT_ANY_THROW(run_overload(o));
}

}  // namespace
}  // namespace inferd::bench
