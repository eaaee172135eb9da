// The engine's prompt rows: prompt logprobs (every prompt token's logprob, rank and top
// alternatives, under chunked prefill, prefix-cache hits and max_tokens 0) and embedding requests
// (LAST / MEAN / CLS pooling, normalisation, Matryoshka truncation), each checked against the fake
// model's reference computed straight from the token history.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/rng.h"
#include "engine/fake_model.h"
#include "inferd/engine.h"

namespace inferd {
namespace {

using testing::FakeExecutor;
using testing::FakeModelSpec;
using testing::reference_hidden;
using testing::reference_logits;

std::vector<int32_t> random_tokens(Rng& rng, int32_t n, int32_t vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& t : v) t = int32_t(rng.next_u64() % uint64_t(vocab));
  return v;
}

// What prompt token p + 1 should get from the logits after tokens [0, p].
SampleLogprobs expected_prompt_logprob(const FakeModelSpec& spec, std::span<const int32_t> prompt,
                                       size_t p, int32_t k) {
  std::vector<float> l(size_t(spec.vocab));
  reference_logits(spec, prompt.subspan(0, p + 1), l.data());
  const float mx = *std::max_element(l.begin(), l.end());
  double sum = 0;
  for (float x : l) sum += std::exp(double(x) - double(mx));
  const double lse = double(mx) + std::log(sum);
  SampleLogprobs e;
  e.token_id = prompt[p + 1];
  e.logprob = float(double(l[size_t(e.token_id)]) - lse);
  e.rank = 1;
  for (float x : l) e.rank += x > l[size_t(e.token_id)] ? 1 : 0;
  std::vector<int32_t> ids(l.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)]; });
  for (int32_t i = 0; i < k; ++i)
    e.top.push_back({ids[size_t(i)], float(double(l[size_t(ids[size_t(i)])]) - lse)});
  return e;
}

void expect_prompt_logprobs(const FakeModelSpec& spec, const std::vector<int32_t>& prompt,
                            const std::vector<SampleLogprobs>& got, int32_t k) {
  ASSERT_EQ(got.size(), prompt.size() - 1);
  for (size_t p = 0; p + 1 < prompt.size(); ++p) {
    SCOPED_TRACE(p);
    const SampleLogprobs e = expected_prompt_logprob(spec, prompt, p, k);
    EXPECT_EQ(got[p].token_id, e.token_id);
    EXPECT_NEAR(got[p].logprob, e.logprob, 1e-5);
    EXPECT_EQ(got[p].rank, e.rank);
    ASSERT_EQ(got[p].top.size(), e.top.size());
    for (size_t i = 0; i < e.top.size(); ++i) {
      EXPECT_EQ(got[p].top[i].token_id, e.top[i].token_id);
      EXPECT_NEAR(got[p].top[i].logprob, e.top[i].logprob, 1e-5);
    }
  }
}

GenerateRequest scored(std::vector<int32_t> prompt, int32_t k, int32_t max_tokens) {
  GenerateRequest r;
  r.prompt_token_ids = std::move(prompt);
  r.params.prompt_logprobs = k;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

// Chunks of 8 tokens over prompts of 1..40 tokens, mixed in one batch with plain requests.
TEST(PromptLogprobs, EveryPromptTokenUnderChunkedPrefill) {
  FakeModelSpec spec;
  EngineConfig cfg;
  cfg.max_num_batched_tokens = 8;
  cfg.max_logprobs = 5;
  Engine engine(std::make_shared<FakeExecutor>(spec), cfg);
  Rng rng(7);
  std::vector<GenerateRequest> reqs;
  for (int32_t len : {1, 2, 7, 8, 9, 23, 40})
    reqs.push_back(scored(random_tokens(rng, len, 64), 3, 4));
  GenerateRequest plain;
  plain.prompt_token_ids = random_tokens(rng, 12, 64);
  plain.params.max_tokens = 5;
  reqs.push_back(plain);
  const std::vector<GenerateRequest> copy = reqs;
  const std::vector<GenerateResult> res = engine.generate(std::move(reqs));
  for (size_t i = 0; i + 1 < copy.size(); ++i) {
    SCOPED_TRACE(copy[i].prompt_token_ids.size());
    expect_prompt_logprobs(spec, copy[i].prompt_token_ids, res[i].prompt_logprobs, 3);
    EXPECT_EQ(res[i].outputs.at(0).token_ids.size(), 4u);
  }
  EXPECT_TRUE(res.back().prompt_logprobs.empty());
}

// They arrive once, in the first output after the prompt (with the first token), not later.
TEST(PromptLogprobs, SentOnceWithTheFirstToken) {
  FakeModelSpec spec;
  EngineConfig cfg;
  cfg.max_num_batched_tokens = 8;
  Engine engine(std::make_shared<FakeExecutor>(spec), cfg);
  Rng rng(3);
  auto stream = engine.submit_stream(scored(random_tokens(rng, 21, 64), 0, 3));
  int with = 0, outputs = 0;
  while (auto o = stream->next()) {
    ++outputs;
    if (!o->prompt_logprobs.empty()) {
      ++with;
      EXPECT_EQ(outputs, 1);
      ASSERT_FALSE(o->outputs.empty());
      EXPECT_EQ(o->outputs[0].token_ids.size(), 1u);
      EXPECT_EQ(o->prompt_logprobs.size(), 20u);
      EXPECT_TRUE(o->prompt_logprobs[0].top.empty());  // prompt_logprobs 0: no alternatives
    }
  }
  EXPECT_EQ(with, 1);
  EXPECT_EQ(outputs, 3);
}

// A prompt whose blocks are in the prefix cache is still scored from position 0 (the request
// reads nothing from the cache), and a later plain request reuses the blocks again.
TEST(PromptLogprobs, PrefixCacheHitsAreRecomputed) {
  FakeModelSpec spec;
  Engine engine(std::make_shared<FakeExecutor>(spec), EngineConfig{});
  Rng rng(11);
  const std::vector<int32_t> prompt = random_tokens(rng, 30, 64);
  GenerateRequest warm;
  warm.prompt_token_ids = prompt;
  warm.params.max_tokens = 1;
  engine.generate({warm});
  const GenerateResult r = engine.generate({scored(prompt, 2, 1)})[0];
  EXPECT_EQ(r.num_cached_tokens, 0);
  expect_prompt_logprobs(spec, prompt, r.prompt_logprobs, 2);
  EXPECT_EQ(engine.generate({warm})[0].num_cached_tokens, 28);  // 7 full blocks of 4
}

// max_tokens 0 scores the prompt alone: no token, finish reason length.
TEST(PromptLogprobs, MaxTokensZeroScoresThePromptAlone) {
  FakeModelSpec spec;
  EngineConfig cfg;
  cfg.max_num_batched_tokens = 8;
  Engine engine(std::make_shared<FakeExecutor>(spec), cfg);
  Rng rng(5);
  const std::vector<int32_t> prompt = random_tokens(rng, 19, 64);
  GenerateRequest r = scored(prompt, 1, 0);
  r.params.n = 2;
  const GenerateResult res = engine.generate({r})[0];
  expect_prompt_logprobs(spec, prompt, res.prompt_logprobs, 1);
  ASSERT_EQ(res.outputs.size(), 2u);
  for (const auto& o : res.outputs) {
    EXPECT_TRUE(o.token_ids.empty());
    EXPECT_EQ(o.finish_reason, FinishReason::kLength);
  }
  // Without prompt logprobs it is just a finished request with nothing in it.
  GenerateRequest bare;
  bare.prompt_token_ids = prompt;
  bare.params.max_tokens = 0;
  const GenerateResult b = engine.generate({bare})[0];
  EXPECT_TRUE(b.prompt_logprobs.empty());
  EXPECT_TRUE(b.outputs.at(0).token_ids.empty());
  EXPECT_EQ(engine.stats().num_running, 0);
}

// ---- embeddings ----------------------------------------------------------------------------

std::vector<float> expected_embedding(const FakeModelSpec& spec, const std::vector<int32_t>& prompt,
                                      PoolingType type, bool normalize, int32_t dims) {
  const size_t H = size_t(spec.hidden_size);
  std::vector<float> v(H, 0.0f), h(H);
  auto add = [&](size_t p) {
    reference_hidden(spec, std::span<const int32_t>(prompt).subspan(0, p + 1), h.data());
    for (size_t c = 0; c < H; ++c) v[c] += h[c];
  };
  if (type == PoolingType::kLast) add(prompt.size() - 1);
  if (type == PoolingType::kCls) add(0);
  if (type == PoolingType::kMean) {
    for (size_t p = 0; p < prompt.size(); ++p) add(p);
    for (float& x : v) x /= float(prompt.size());
  }
  if (dims > 0) v.resize(size_t(dims));
  if (normalize) {
    double ss = 0;
    for (float x : v) ss += double(x) * x;
    for (float& x : v) x = float(x / std::sqrt(ss));
  }
  return v;
}

GenerateRequest embed(std::vector<int32_t> prompt, std::optional<PoolingType> type = {},
                      std::optional<bool> normalize = {}, std::optional<int32_t> dims = {}) {
  GenerateRequest r;
  r.prompt_token_ids = std::move(prompt);
  r.pooling = PoolingParams{type, normalize, dims};
  return r;
}

TEST(Embeddings, PoolingTypesOverChunksAndPrefixHits) {
  FakeModelSpec spec;
  spec.hidden_size = 12;
  EngineConfig cfg;
  cfg.task = ModelTask::kEmbed;
  cfg.max_num_batched_tokens = 8;
  cfg.pooling.type = PoolingType::kMean;
  cfg.pooling.normalize = false;
  cfg.pooling.matryoshka = true;
  Engine engine(std::make_shared<FakeExecutor>(spec), cfg);
  Rng rng(21);
  const std::vector<int32_t> a = random_tokens(rng, 29, 64), b = random_tokens(rng, 1, 64);
  // Twice each: the second run of a prompt finds its blocks in the prefix cache.
  for (int round = 0; round < 2; ++round) {
    std::vector<GenerateRequest> reqs = {
        embed(a),                               // the engine's default: MEAN, not normalised
        embed(a, PoolingType::kLast, true),     // LAST, normalised
        embed(a, PoolingType::kCls, false),     // CLS
        embed(a, PoolingType::kMean, true, 5),  // Matryoshka: 5 values, then normalised
        embed(b, PoolingType::kMean, true),     // one token
    };
    const std::vector<GenerateResult> res = engine.generate(std::move(reqs));
    const std::vector<std::vector<float>> want = {
        expected_embedding(spec, a, PoolingType::kMean, false, 0),
        expected_embedding(spec, a, PoolingType::kLast, true, 0),
        expected_embedding(spec, a, PoolingType::kCls, false, 0),
        expected_embedding(spec, a, PoolingType::kMean, true, 5),
        expected_embedding(spec, b, PoolingType::kMean, true, 0),
    };
    for (size_t i = 0; i < want.size(); ++i) {
      SCOPED_TRACE(::testing::Message() << "round " << round << " request " << i);
      ASSERT_EQ(res[i].embedding.size(), want[i].size());
      for (size_t c = 0; c < want[i].size(); ++c)
        EXPECT_NEAR(res[i].embedding[c], want[i][c], 1e-5);
      EXPECT_EQ(res[i].outputs.at(0).finish_reason, FinishReason::kStop);
      EXPECT_TRUE(res[i].outputs.at(0).token_ids.empty());
    }
  }
  // Generation requests are refused by an embedding engine.
  GenerateRequest gen;
  gen.prompt_token_ids = a;
  EXPECT_THROW(engine.generate({gen}), InvalidRequestError);
}

TEST(Embeddings, AGeneratingEngineRefusesThem) {
  FakeModelSpec spec;
  spec.hidden_size = 4;
  Engine engine(std::make_shared<FakeExecutor>(spec), EngineConfig{});
  EXPECT_THROW(engine.generate({embed({1, 2, 3})}), InvalidRequestError);
  // An executor that cannot pool cannot serve --task embed.
  EngineConfig cfg;
  cfg.task = ModelTask::kEmbed;
  EXPECT_THROW(Engine(std::make_shared<FakeExecutor>(FakeModelSpec{}), cfg), Error);
}

}  // namespace
}  // namespace inferd
