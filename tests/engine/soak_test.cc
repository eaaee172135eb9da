// Randomized soak: thousands of requests with random lengths, shared prefixes, sampling
// parameters, n, priorities and arrival times, and aborts from another thread, on a small pool
// that forces preemption and eviction. Every request must end exactly once, greedy ones with the
// reference tokens, and every block must be back in the pool.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "core/rng.h"
#include "engine/fake_model.h"
#include "inferd/engine.h"

namespace inferd {
namespace {

using testing::FakeDecoder;
using testing::FakeExecutor;
using testing::FakeModelSpec;
using testing::reference_greedy;

struct Tracker {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, GenerateResult> results;
  std::map<std::string, int> finished_count;
  int finished = 0;
  int after_finish = 0;  // outputs that arrived after the finished one (must stay 0)
  std::vector<std::string> ids;

  OutputCallback cb() {
    return [this](RequestOutput&& o) {
      std::lock_guard lk(mu);
      const std::string id = o.request_id;
      if (finished_count[id] > 0) ++after_finish;
      const bool f = o.finished;
      results[id].accumulate(std::move(o));
      if (f) {
        ++finished_count[id];
        ++finished;
        cv.notify_all();
      }
    };
  }
};

void soak(bool caching, int num_requests, uint64_t seed) {
  FakeModelSpec spec;
  spec.vocab = 64;
  spec.block_size = 4;
  spec.num_blocks = 64;  // 256 tokens for up to 16 sequences of up to 128
  spec.max_model_len = 128;
  spec.step_delay_us = 150;
  auto exec = std::make_shared<FakeExecutor>(spec);
  EngineConfig cfg;
  cfg.max_num_batched_tokens = 64;
  cfg.max_num_seqs = 16;
  cfg.max_queue = 0;
  cfg.eos_token_ids = {0};
  cfg.enable_prefix_caching = caching;
  auto decoder = std::make_shared<FakeDecoder>();
  Engine engine(exec, cfg, decoder);

  Rng rng(seed);
  std::vector<std::vector<int32_t>> prefixes;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> p(size_t(4 + rng.next_u64() % 40));
    for (auto& t : p) t = 1 + int32_t(rng.next_u64() % uint64_t(spec.vocab - 1));
    prefixes.push_back(p);
  }
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < num_requests; ++i) {
    GenerateRequest r;
    r.request_id = fmt::format("q{}", i);
    if (rng.uniform() < 0.5) r.prompt_token_ids = prefixes[rng.next_u64() % prefixes.size()];
    const int32_t tail = 1 + int32_t(rng.next_u64() % 30);
    for (int32_t k = 0; k < tail; ++k) {
      r.prompt_token_ids.push_back(int32_t(rng.next_u64() % uint64_t(spec.vocab)));
    }
    const int32_t room = spec.max_model_len - int32_t(r.prompt_token_ids.size());
    r.params.max_tokens = 1 + int32_t(rng.next_u64() % uint64_t(std::min(40, room)));
    const double kind = rng.uniform();
    if (kind < 0.4) {
      r.params.temperature = 0.0f;
    } else {
      r.params.temperature = float(0.3 + rng.uniform());
      if (rng.uniform() < 0.3) r.params.top_k = 1 + int32_t(rng.next_u64() % 10);
      if (rng.uniform() < 0.3) r.params.top_p = float(0.5 + 0.5 * rng.uniform());
      if (rng.uniform() < 0.2) r.params.min_p = 0.05f;
      if (rng.uniform() < 0.2) r.params.repetition_penalty = 1.1f;
      if (rng.uniform() < 0.2) r.params.frequency_penalty = 0.3f;
      if (rng.uniform() < 0.5) r.params.seed = rng.next_u64();
    }
    if (rng.uniform() < 0.1) r.params.n = 2 + int32_t(rng.next_u64() % 2);
    if (rng.uniform() < 0.1) r.params.stop = {"ab", "q"};
    if (rng.uniform() < 0.1) r.params.logprobs = 2;
    if (rng.uniform() < 0.1) r.params.min_tokens = 1;
    if (rng.uniform() < 0.1) r.params.ignore_eos = true;
    r.priority = int32_t(rng.next_u64() % 3);
    reqs.push_back(std::move(r));
  }

  Tracker tracker;
  std::atomic<int> submitted{0};
  // Aborts recent requests (most likely still live) until everything finished.
  std::atomic<bool> all_done{false};
  std::thread aborter([&] {
    Rng arng(seed + 1);
    while (!all_done.load()) {
      const int hi = submitted.load();
      if (hi > 0 && arng.uniform() < 0.3) {
        const int lo = std::max(0, hi - 40);
        engine.abort(fmt::format("q{}", lo + int(arng.next_u64() % uint64_t(hi - lo))));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  for (int i = 0; i < num_requests; ++i) {
    engine.submit(reqs[size_t(i)], tracker.cb());
    submitted.store(i + 1);
    if (i % 10 == 9) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  {
    std::unique_lock lk(tracker.mu);
    const bool ok = tracker.cv.wait_for(lk, std::chrono::seconds(60),
                                        [&] { return tracker.finished == num_requests; });
    all_done.store(true);
    lk.unlock();
    aborter.join();
    ASSERT_TRUE(ok) << tracker.finished << " of " << num_requests;
  }

  std::lock_guard lk(tracker.mu);
  EXPECT_EQ(tracker.after_finish, 0);
  int aborted = 0, checked_greedy = 0;
  for (const auto& r : reqs) {
    ASSERT_EQ(tracker.finished_count[r.request_id], 1) << r.request_id;
    const GenerateResult& res = tracker.results[r.request_id];
    ASSERT_EQ(int(res.outputs.size()), r.params.n) << r.request_id;
    bool any_abort = false;
    for (const auto& o : res.outputs) {
      any_abort |= o.finish_reason == FinishReason::kAbort;
      EXPECT_LE(int32_t(o.token_ids.size()), *r.params.max_tokens);
      if (o.finish_reason == FinishReason::kLength) {
        EXPECT_EQ(int32_t(o.token_ids.size()), *r.params.max_tokens) << r.request_id;
      }
      if (o.finish_reason == FinishReason::kStop && !o.stop_string) {
        EXPECT_EQ(o.token_ids.back(), 0) << r.request_id;
      }
      if (r.params.logprobs) {
        EXPECT_EQ(o.logprobs.size(), o.token_ids.size());
      }
    }
    aborted += any_abort ? 1 : 0;
    const bool plain_greedy = r.params.temperature == 0.0f && r.params.stop.empty() &&
                              r.params.min_tokens == 0 && !r.params.ignore_eos;
    if (plain_greedy && !any_abort) {
      const auto want =
          reference_greedy(spec, r.prompt_token_ids, *r.params.max_tokens, std::vector<int32_t>{0});
      for (const auto& o : res.outputs) EXPECT_EQ(o.token_ids, want) << r.request_id;
      ++checked_greedy;
    }
  }
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.requests_finished + s.requests_aborted, num_requests);
  EXPECT_EQ(s.requests_aborted, aborted);
  EXPECT_GT(aborted, 0);
  EXPECT_GT(checked_greedy, num_requests / 5);
  EXPECT_EQ(s.blocks_used, 0);
  EXPECT_EQ(s.blocks_free + s.blocks_cached, s.blocks_total);
  EXPECT_EQ(s.num_running, 0);
  EXPECT_EQ(s.num_waiting, 0);
  EXPECT_GT(s.preemptions, 0);
  if (caching) {
    EXPECT_GT(s.prefix_cache_hits, 0);
    EXPECT_GT(s.evictions, 0);
  }
  std::printf(
      "soak caching=%d: %d requests, %d aborted, %d greedy checked, %lld steps, "
      "%lld preemptions, %lld/%lld prefix tokens hit, %lld evictions\n",
      int(caching), num_requests, aborted, checked_greedy, (long long)s.num_steps,
      (long long)s.preemptions, (long long)s.prefix_cache_hits, (long long)s.prefix_cache_queries,
      (long long)s.evictions);
}

TEST(EngineSoak, RandomRequestsWithAbortsPrefixCaching) {
  soak(true, 3000, 1);
}
TEST(EngineSoak, RandomRequestsWithAbortsNoPrefixCaching) {
  soak(false, 1500, 2);
}

}  // namespace
}  // namespace inferd
