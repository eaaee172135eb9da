// The in-process engine benchmarks against the engine tests' fake paged-KV model.
#include <gtest/gtest.h>

#include <memory>

#include "bench/offline.h"
#include "engine/fake_model.h"

namespace inferd::bench {
namespace {

std::shared_ptr<testing::FakeExecutor> fake_model(int32_t step_delay_us) {
  testing::FakeModelSpec spec;
  spec.vocab = 64;
  spec.block_size = 4;
  spec.num_blocks = 1024;
  spec.max_model_len = 512;
  spec.step_delay_us = step_delay_us;
  return std::make_shared<testing::FakeExecutor>(spec);
}

TEST(Offline, RandomTokenPromptsAreDeterministicAndInRange) {
  const std::vector<int32_t> lens = {1, 5, 100};
  const auto a = random_token_prompts(lens, 50, 1);
  EXPECT_EQ(a, random_token_prompts(lens, 50, 1));
  EXPECT_NE(a, random_token_prompts(lens, 50, 2));
  ASSERT_EQ(a.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a[i].size(), size_t(lens[i]));
    for (int32_t t : a[i]) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 50);
    }
  }
}

TEST(Offline, FitToContext) {
  std::vector<std::vector<int32_t>> p = {std::vector<int32_t>(10), std::vector<int32_t>(30),
                                         std::vector<int32_t>(50)};
  std::vector<int32_t> o = {10, 30, 10};
  EXPECT_EQ(fit_to_context(p, o, 40), 2u);
  EXPECT_EQ(p[0].size(), 10u);
  EXPECT_EQ(o[0], 10);
  EXPECT_EQ(p[1].size(), 30u);  // output shortened
  EXPECT_EQ(o[1], 10);
  EXPECT_EQ(p[2].size(), 39u);  // output to 1, then the prompt
  EXPECT_EQ(o[2], 1);
}

TEST(Offline, ThroughputCountsEveryForcedToken) {
  auto model = fake_model(0);
  EngineConfig cfg;
  cfg.eos_token_ids = {0, 1, 2, 3};  // frequent EOS: ignore_eos must hold them off
  Engine engine(model, cfg);
  const std::vector<int32_t> lens = {3, 17, 40, 8, 60, 12};
  const std::vector<int32_t> outs = {5, 1, 30, 12, 7, 20};
  const auto prompts = random_token_prompts(lens, 64, 0);
  const ThroughputResult r = run_throughput(engine, prompts, outs, 1.0f);
  EXPECT_EQ(r.num_requests, 6u);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_EQ(r.prompt_tokens, 3 + 17 + 40 + 8 + 60 + 12);
  EXPECT_EQ(r.output_tokens, 5 + 1 + 30 + 12 + 7 + 20);
  EXPECT_GT(r.elapsed_s, 0);
  EXPECT_NEAR(r.output_tok_s, double(r.output_tokens) / r.elapsed_s, 1e-6 * r.output_tok_s);
  EXPECT_NEAR(r.total_tok_s, double(r.prompt_tokens + r.output_tokens) / r.elapsed_s,
              1e-6 * r.total_tok_s);
}

TEST(Offline, LatencySplitsPrefillAndDecode) {
  // Every engine step takes at least 3 ms: one prefill step, then one step per further token.
  auto model = fake_model(3000);
  Engine engine(model, EngineConfig{});
  const auto prompt = random_token_prompts({32}, 64, 0)[0];
  const LatencyResult r = run_latency(engine, prompt, 11, 0.0f);
  EXPECT_EQ(r.prompt_tokens, 32);
  EXPECT_EQ(r.output_tokens, 11);
  EXPECT_GE(r.ttft_s, 0.003);
  EXPECT_GE(r.e2e_s - r.ttft_s, 10 * 0.003);
  EXPECT_NEAR(r.prefill_tok_s, 32 / r.ttft_s, 1e-6 * r.prefill_tok_s);
  EXPECT_NEAR(r.decode_tok_s, 10 / (r.e2e_s - r.ttft_s), 1e-6 * r.decode_tok_s);
  EXPECT_LE(r.decode_tok_s, 1.0 / 0.003 + 1);
}

}  // namespace
}  // namespace inferd::bench
