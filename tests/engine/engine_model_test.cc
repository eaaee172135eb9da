// The engine on the real CPU model (tiny random fp32 Llama-family models from tests/data/goldens):
// greedy tokens through continuous batching, chunked prefill, prefix caching and preemption equal
// plain one-sequence greedy generation on the same weights.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "backend/backend.h"
#include "core/rng.h"
#include "inferd/engine.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

const std::string kGoldens = fmt::format("{}/goldens/", INFERD_TEST_DATA_DIR);

std::shared_ptr<ModelRunner> load(const std::string& name, int32_t num_blocks, int32_t budget) {
  RunnerOptions o;
  o.num_kv_blocks = num_blocks;
  o.block_size = 4;  // small blocks: many block-table entries per sequence
  o.max_num_batched_tokens = budget;
  return std::make_shared<ModelRunner>(fmt::format("{}{}", kGoldens, name), o, make_cpu_backend(2));
}

std::vector<int32_t> random_tokens(Rng& rng, int32_t n, int32_t vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& t : v) t = int32_t(rng.next_u64() % uint64_t(vocab));
  return v;
}

GenerateRequest greedy_request(std::vector<int32_t> prompt, int32_t max_tokens, std::string id) {
  GenerateRequest r;
  r.request_id = std::move(id);
  r.prompt_token_ids = std::move(prompt);
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  return r;
}

class EngineOnModel : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineOnModel, BatchedChunkedPrefixCachedAndPreemptedGreedyEqualsPlainGreedy) {
  const std::string name = GetParam();
  auto ref_model = load(name, 64, 256);
  const int32_t V = ref_model->vocab_size();
  Rng rng(31);
  const std::vector<int32_t> lens = {5, 23, 2, 40, 11, 17};
  const auto shared = random_tokens(rng, 12, V);
  std::vector<GenerateRequest> reqs;
  std::vector<std::vector<int32_t>> want;
  for (size_t i = 0; i < lens.size(); ++i) {
    auto prompt = random_tokens(rng, lens[i], V);
    if (i % 2 == 1) prompt.insert(prompt.begin(), shared.begin(), shared.end());  // shared prefix
    const int32_t max_tokens = 6 + int32_t(i);
    reqs.push_back(greedy_request(prompt, max_tokens, fmt::format("m{}", i)));
    want.push_back(greedy_generate(*ref_model, prompt, max_tokens, 256));
  }

  struct Case {
    int32_t num_blocks, budget, max_seqs;
    bool caching;
  };
  for (const Case c : {Case{64, 16, 4, true}, Case{64, 16, 4, false}, Case{16, 32, 8, true}}) {
    SCOPED_TRACE(::testing::Message() << "blocks " << c.num_blocks << " budget " << c.budget
                                      << " caching " << c.caching);
    EngineConfig cfg;
    cfg.max_num_batched_tokens = c.budget;
    cfg.max_num_seqs = c.max_seqs;
    cfg.enable_prefix_caching = c.caching;
    Engine engine(load(name, c.num_blocks, c.budget), cfg);
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, GenerateResult> got;
    int finished = 0;
    auto cb = [&](RequestOutput&& o) {
      std::lock_guard lk(mu);
      const bool f = o.finished;
      got[o.request_id].accumulate(std::move(o));
      finished += f ? 1 : 0;
      cv.notify_all();
    };
    // Staggered arrivals: later requests join while earlier ones decode.
    for (size_t i = 0; i < reqs.size(); ++i) {
      GenerateRequest r = reqs[i];
      if (c.num_blocks == 16) {
        // 64-token pool: keep every request within max_model_len.
        const int32_t room = engine.config().max_model_len - *r.params.max_tokens;
        if (int32_t(r.prompt_token_ids.size()) > room) r.prompt_token_ids.resize(size_t(room));
      }
      engine.submit(r, cb);
      // The tiny pool gets everything at once (to force preemption).
      if (c.num_blocks != 16) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    {
      std::unique_lock lk(mu);
      ASSERT_TRUE(
          cv.wait_for(lk, std::chrono::seconds(120), [&] { return finished == int(reqs.size()); }));
    }
    for (size_t i = 0; i < reqs.size(); ++i) {
      std::vector<int32_t> expect = want[i];
      if (c.num_blocks == 16) {
        const int32_t room = engine.config().max_model_len - *reqs[i].params.max_tokens;
        auto prompt = reqs[i].prompt_token_ids;
        if (int32_t(prompt.size()) > room) {
          prompt.resize(size_t(room));
          expect = greedy_generate(*ref_model, prompt, *reqs[i].params.max_tokens, 256);
        }
      }
      EXPECT_EQ(got[reqs[i].request_id].outputs.at(0).token_ids, expect) << "request " << i;
    }
    const EngineStats s = engine.stats();
    if (c.caching) {
      EXPECT_GT(s.prefix_cache_hits, 0);
    }
    if (c.num_blocks == 16) {
      EXPECT_GT(s.preemptions, 0);
    }
    EXPECT_EQ(s.blocks_used, 0);
    EXPECT_EQ(s.blocks_free + s.blocks_cached, s.blocks_total);
  }
}

TEST_P(EngineOnModel, PrefixCacheHitGivesIdenticalTokens) {
  const std::string name = GetParam();
  auto model = load(name, 64, 64);
  const int32_t V = model->vocab_size();
  Rng rng(5);
  const auto prompt = random_tokens(rng, 30, V);
  EngineConfig cfg;
  cfg.max_num_batched_tokens = 64;
  Engine engine(model, cfg);
  const auto first = engine.generate({greedy_request(prompt, 10, "a")})[0];
  const auto second = engine.generate({greedy_request(prompt, 10, "b")})[0];
  EXPECT_EQ(first.num_cached_tokens, 0);
  EXPECT_EQ(second.num_cached_tokens, 28);
  EXPECT_EQ(second.outputs[0].token_ids, first.outputs[0].token_ids);
  EXPECT_EQ(engine.stats().prefix_cache_hits, 28);
}

// lm-evaluation-harness's loglikelihood, as it computes it from a completions answer with echo
// and logprobs (token_logprobs[ctxlen:], is_greedy from top_logprobs), from the engine's prompt
// logprobs: equal to transformers' log-softmax of the golden logits, under chunked prefill and
// with the context already in the prefix cache.
TEST_P(EngineOnModel, PromptLogprobsGiveTransformersLoglikelihood) {
  const std::string name = GetParam();
  const auto gold = SafetensorsIndex::open_file(kGoldens + name + "/golden.safetensors");
  EngineConfig cfg;
  cfg.max_num_batched_tokens = 8;
  Engine engine(load(name, 64, 8), cfg);
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    const auto ids = testing_util::ints(gold.get("prompt" + std::to_string(i) + ".ids"));
    const Tensor ref = gold.get("prompt" + std::to_string(i) + ".logits");
    if (ids.size() < 3) continue;
    const size_t ctxlen = ids.size() / 2;
    const auto want = testing_util::loglikelihood(ref.data_as<float>(), ref.size(1), ids, ctxlen);
    // The context alone first: its blocks are then in the prefix cache.
    GenerateRequest ctx;
    ctx.prompt_token_ids.assign(ids.begin(), ids.begin() + long(ctxlen));
    ctx.params.max_tokens = 1;
    engine.generate({ctx});
    GenerateRequest r;  // echo + logprobs 1 + max_tokens 0, as lm-eval's request becomes
    r.prompt_token_ids = ids;
    r.params.prompt_logprobs = 1;
    r.params.max_tokens = 0;
    const GenerateResult res = engine.generate({r})[0];
    ASSERT_EQ(res.prompt_logprobs.size(), ids.size() - 1);
    double sum = 0;
    bool greedy = true;
    for (size_t p = ctxlen; p < ids.size(); ++p) {  // token_logprobs[p] = prompt_logprobs[p - 1]
      const SampleLogprobs& lp = res.prompt_logprobs[p - 1];
      EXPECT_EQ(lp.token_id, ids[p]);
      EXPECT_NEAR(lp.logprob, want.per_token[p - ctxlen], 1e-4) << name << " position " << p;
      sum += lp.logprob;
      ASSERT_EQ(lp.top.size(), 1u);
      greedy = greedy && lp.logprob == lp.top[0].logprob;
    }
    EXPECT_NEAR(sum, want.sum, 1e-4 * double(ids.size())) << name << " prompt " << i;
    EXPECT_EQ(greedy, want.is_greedy) << name << " prompt " << i;
  }
}

// Embeddings on the real model: the same vector whatever the chunking, and again when the
// prompt's blocks are in the prefix cache; unit length when normalised.
TEST_P(EngineOnModel, EmbeddingsIndependentOfChunkingAndCache) {
  const std::string name = GetParam();
  Rng rng(17);
  const auto prompt = random_tokens(rng, 37, load(name, 64, 64)->vocab_size());
  for (PoolingType t : {PoolingType::kLast, PoolingType::kMean, PoolingType::kCls}) {
    std::vector<std::vector<float>> got;
    for (int32_t budget : {64, 8}) {
      EngineConfig cfg;
      cfg.task = ModelTask::kEmbed;
      cfg.max_num_batched_tokens = budget;
      Engine engine(load(name, 64, budget), cfg);
      GenerateRequest r;
      r.prompt_token_ids = prompt;
      r.pooling = PoolingParams{t, true, std::nullopt};
      for (int round = 0; round < 2; ++round) {
        const GenerateResult res = engine.generate({r})[0];
        ASSERT_EQ(res.error, "");
        got.push_back(res.embedding);
      }
    }
    ASSERT_EQ(got[0].size(), size_t(load(name, 64, 64)->config().hidden_size)) << to_string(t);
    double norm = 0;
    for (float x : got[0]) norm += double(x) * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);
    for (size_t k = 1; k < got.size(); ++k)
      EXPECT_LT(testing_util::rel_err(got[k].data(), got[0].data(), got[0].size()), 1e-5)
          << name << " " << to_string(t) << " run " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, EngineOnModel,
                         ::testing::Values("llama3", "qwen3", "mistral", "llama32_tied"));

}  // namespace
}  // namespace inferd
