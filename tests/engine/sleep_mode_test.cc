// Sleep mode (issue 31) on the CPU model runner: Engine::sleep / wake_up give the same greedy
// tokens as before at both levels; requests during sleep are refused (EngineSleepingError) or
// wait for a wake (sleep_wait_s), and fail with an `unavailable` error when none comes; sleep
// drains the requests in flight (never dropping one) or is called off at its bound; bad levels and
// executors without sleep mode are clear errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "backend/backend.h"
#include "core/rng.h"
#include "inferd/engine.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

const std::string kModel = fmt::format("{}/goldens/llama3", INFERD_TEST_DATA_DIR);

std::shared_ptr<ModelRunner> load(bool sleep_mode) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 4;
  o.enable_sleep_mode = sleep_mode;
  return std::make_shared<ModelRunner>(kModel, o, make_cpu_backend(2));
}

GenerateRequest greedy(int32_t max_tokens, uint64_t seed = 5) {
  Rng rng(seed);
  GenerateRequest r;
  for (int i = 0; i < 13; ++i) r.prompt_token_ids.push_back(int32_t(rng.next_u64() % 100));
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

std::vector<int32_t> run(Engine& e, GenerateRequest r) {
  auto results = e.generate({std::move(r)});
  EXPECT_TRUE(results[0].error.empty()) << results[0].error;
  return results[0].outputs.at(0).token_ids;
}

// A request submitted now whose finished output comes back through the future.
std::future<RequestOutput> submit(Engine& e, GenerateRequest r) {
  auto done = std::make_shared<std::promise<RequestOutput>>();
  auto fut = done->get_future();
  auto acc = std::make_shared<std::vector<int32_t>>();
  e.submit(std::move(r), [done, acc](RequestOutput&& out) {
    for (const auto& d : out.outputs)
      acc->insert(acc->end(), d.token_ids.begin(), d.token_ids.end());
    if (out.finished) {
      if (out.outputs.empty()) out.outputs.emplace_back();
      out.outputs[0].token_ids = *acc;
      done->set_value(std::move(out));
    }
  });
  return fut;
}

class SleepLevels : public ::testing::TestWithParam<int> {};

TEST_P(SleepLevels, WakeGivesTheSameGreedyTokensAndForgetsThePrefixCache) {
  auto runner = load(true);
  Engine e(runner);
  const std::vector<int32_t> before = run(e, greedy(12));
  EXPECT_GT(e.stats().blocks_cached, 0);
  e.sleep(GetParam(), 10);
  EXPECT_EQ(e.sleep_level(), GetParam());
  EXPECT_EQ(runner->sleep_level(), GetParam());
  EXPECT_EQ(e.stats().blocks_cached, 0);  // the KV behind the cached prefixes is gone
  EXPECT_THROW(e.submit(greedy(4), [](RequestOutput&&) {}), EngineSleepingError);
  e.sleep(GetParam(), 10);  // asleep already: a no-op
  e.wake_up();
  EXPECT_EQ(e.sleep_level(), 0);
  EXPECT_EQ(e.stats().prefix_cache_hits, 0);
  EXPECT_EQ(run(e, greedy(12)), before);
  e.wake_up();  // awake already: a no-op
  // Twice, to see that a second sleep (the pinned copy kept from the first) works as well.
  e.sleep(GetParam(), 10);
  e.wake_up();
  EXPECT_EQ(run(e, greedy(12)), before);
}

INSTANTIATE_TEST_SUITE_P(Levels, SleepLevels, ::testing::Values(1, 2));

TEST(SleepMode, BadLevelIsAnInvalidRequest) {
  Engine e(load(true));
  EXPECT_THROW(e.sleep(0, 1), InvalidRequestError);
  EXPECT_THROW(e.sleep(3, 1), InvalidRequestError);
  EXPECT_EQ(e.sleep_level(), 0);
}

TEST(SleepMode, ExecutorWithoutSleepModeRefusesAndKeepsServing) {
  Engine e(load(false));
  try {
    e.sleep(1, 1);
    FAIL() << "slept without --enable-sleep-mode";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("--enable-sleep-mode"), std::string::npos) << err.what();
  }
  EXPECT_EQ(e.sleep_level(), 0);
  EXPECT_EQ(run(e, greedy(3)).size(), 3u);
}

TEST(SleepMode, RequestWaitsForTheWake) {
  EngineConfig cfg;
  cfg.sleep_wait_s = 30;
  Engine e(load(true), cfg);
  const std::vector<int32_t> want = run(e, greedy(6));
  e.sleep(1, 10);
  auto fut = submit(e, greedy(6));
  EXPECT_EQ(fut.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  EXPECT_EQ(e.stats().num_running, 0);
  e.wake_up();
  const RequestOutput out = fut.get();
  EXPECT_TRUE(out.error.empty()) << out.error;
  EXPECT_EQ(out.outputs.at(0).token_ids, want);
}

TEST(SleepMode, RequestThatWaitsTooLongFailsAsUnavailable) {
  EngineConfig cfg;
  cfg.sleep_wait_s = 0.2;
  Engine e(load(true), cfg);
  e.sleep(2, 10);
  const auto t0 = std::chrono::steady_clock::now();
  const RequestOutput out = submit(e, greedy(4)).get();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(waited, 0.15);
  EXPECT_LT(waited, 5.0);
  EXPECT_TRUE(out.unavailable);
  EXPECT_NE(out.error.find("--sleep-wait-seconds"), std::string::npos) << out.error;
  // A waiting request may be aborted too.
  cfg.sleep_wait_s = 30;
  Engine e2(load(true), cfg);
  e2.sleep(1, 10);
  GenerateRequest r = greedy(4);
  r.request_id = "parked";
  auto fut = submit(e2, std::move(r));
  EXPECT_TRUE(e2.abort("parked"));
  EXPECT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  e2.wake_up();
}

TEST(SleepMode, SleepDrainsTheRequestsInFlight) {
  auto runner = load(true);
  Engine e(runner);
  const std::vector<int32_t> want = run(e, greedy(40, 9));
  auto fut = submit(e, greedy(40, 9));
  e.sleep(1, 30);  // returns once the request has finished
  EXPECT_EQ(fut.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  const RequestOutput out = fut.get();
  EXPECT_TRUE(out.error.empty()) << out.error;
  EXPECT_EQ(out.outputs.at(0).token_ids, want);
  EXPECT_EQ(runner->sleep_level(), 1);
  e.wake_up();
}

TEST(SleepMode, DrainBoundPassedCallsTheSleepOff) {
  auto runner = load(true);
  Engine e(runner);
  const std::vector<int32_t> want = run(e, greedy(230, 3));
  // Until the request is seen running (a fast machine may finish one before it is seen).
  std::future<RequestOutput> fut;
  for (bool running = false; !running;) {
    fut = submit(e, greedy(230, 3));
    while (!running && fut.wait_for(std::chrono::microseconds(100)) != std::future_status::ready)
      running = e.stats().num_running > 0;
    if (!running) {
      EXPECT_EQ(fut.get().outputs.at(0).token_ids, want);
    }
  }
  try {
    e.sleep(2, 0);
    FAIL() << "slept with a request in flight";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("called off"), std::string::npos) << err.what();
  }
  EXPECT_EQ(e.sleep_level(), 0);
  EXPECT_EQ(runner->sleep_level(), 0);
  const RequestOutput out = fut.get();  // never dropped
  EXPECT_TRUE(out.error.empty()) << out.error;
  EXPECT_EQ(out.outputs.at(0).token_ids, want);
  EXPECT_EQ(run(e, greedy(3)).size(), 3u);  // admission resumed
}

TEST(SleepMode, ShutdownWhileAsleepFinishesWaitingRequests) {
  EngineConfig cfg;
  cfg.sleep_wait_s = 30;
  auto e = std::make_unique<Engine>(load(true), cfg);
  e->sleep(1, 10);
  auto fut = submit(*e, greedy(4));
  e->shutdown();
  EXPECT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_THROW(e->wake_up(), EngineStoppedError);
}

}  // namespace
}  // namespace inferd
