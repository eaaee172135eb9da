#include "inferd/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <thread>

#include "core/rng.h"
#include "engine/engine_config.h"
#include "engine/fake_model.h"

namespace inferd {
namespace {

using testing::FakeDecoder;
using testing::FakeExecutor;
using testing::FakeModelSpec;
using testing::reference_greedy;
using testing::reference_logits;

// Collects streamed outputs from the engine thread.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, GenerateResult> results;
  std::map<std::string, std::vector<RequestOutput>> raw;  // copies of every output
  int finished = 0;

  OutputCallback cb() {
    return [this](RequestOutput&& o) {
      std::lock_guard lk(mu);
      raw[o.request_id].push_back(o);
      const bool f = o.finished;
      results[o.request_id].accumulate(std::move(o));
      if (f) ++finished;
      cv.notify_all();
    };
  }
  void wait_finished(int n) {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return finished >= n; }))
        << finished << " of " << n << " finished";
  }
  void wait_tokens(const std::string& id, size_t n) {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] {
      auto it = results.find(id);
      return it != results.end() && !it->second.outputs.empty() &&
             it->second.outputs[0].token_ids.size() >= n;
    }));
  }
  GenerateResult get(const std::string& id) {
    std::lock_guard lk(mu);
    return results.at(id);
  }
};

std::vector<int32_t> random_tokens(Rng& rng, int32_t n, int32_t vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& t : v) t = int32_t(rng.next_u64() % uint64_t(vocab));
  return v;
}

GenerateRequest greedy_request(std::vector<int32_t> prompt, int32_t max_tokens,
                               std::string id = "") {
  GenerateRequest r;
  r.request_id = std::move(id);
  r.prompt_token_ids = std::move(prompt);
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  return r;
}

EngineConfig config_with(int32_t budget, int32_t max_seqs, std::vector<int32_t> eos = {}) {
  EngineConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.eos_token_ids = std::move(eos);
  return c;
}

void expect_pool_drained(const Engine& e) {
  const EngineStats s = e.stats();
  EXPECT_EQ(s.blocks_used, 0);
  EXPECT_EQ(s.blocks_free + s.blocks_cached, s.blocks_total);
  EXPECT_EQ(s.num_running, 0);
  EXPECT_EQ(s.num_waiting, 0);
}

// ---- Batch invariance -------------------------------------------------------------------------

TEST(Engine, GreedyTokensAreBatchInvariantWithChunkedPrefillAndStaggeredArrivals) {
  FakeModelSpec spec;
  const std::vector<int32_t> eos = {0};
  Rng rng(99);
  const std::vector<int32_t> lens = {3, 17, 40, 5, 64, 1, 9, 33, 12, 27};
  std::vector<GenerateRequest> reqs;
  std::vector<std::vector<int32_t>> want;
  for (size_t i = 0; i < lens.size(); ++i) {
    const int32_t max_tokens = 5 + int32_t(i * 3);
    reqs.push_back(greedy_request(random_tokens(rng, lens[i], spec.vocab), max_tokens,
                                  "r" + std::to_string(i)));
    want.push_back(reference_greedy(spec, reqs.back().prompt_token_ids, max_tokens, eos));
  }
  // Each alone.
  {
    auto exec = std::make_shared<FakeExecutor>(spec);
    Engine engine(exec, config_with(2048, 256, eos));
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto res = engine.generate({reqs[i]});
      ASSERT_EQ(res[0].outputs.size(), 1u);
      EXPECT_EQ(res[0].outputs[0].token_ids, want[i]) << "alone " << i;
      const bool stopped = want[i].back() == 0;
      EXPECT_EQ(res[0].outputs[0].finish_reason,
                stopped ? FinishReason::kStop : FinishReason::kLength);
    }
  }
  // Mixed: a 16-token budget forces chunked prefill mixed with decodes; at most 4 sequences run;
  // half the requests arrive while the first ones are decoding.
  for (bool caching : {true, false}) {
    auto exec = std::make_shared<FakeExecutor>(spec);
    EngineConfig cfg = config_with(16, 4, eos);
    cfg.enable_prefix_caching = caching;
    Engine engine(exec, cfg);
    Collector col;
    for (size_t i = 0; i < 5; ++i) engine.submit(reqs[i], col.cb());
    col.wait_tokens("r0", 2);
    for (size_t i = 5; i < reqs.size(); ++i) {
      engine.submit(reqs[i], col.cb());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    col.wait_finished(int(reqs.size()));
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(col.get(reqs[i].request_id).outputs.at(0).token_ids, want[i])
          << "mixed " << i << " caching " << caching;
    }
    EXPECT_LE(exec->max_batch_tokens(), 16);
    EXPECT_GT(exec->num_forwards(), 64 / 16);  // the 64-token prompt took several chunks
    expect_pool_drained(engine);
  }
}

TEST(Engine, FairChunkedPrefillGivesIdenticalGreedyTokens) {
  // Four short requests decode while a 300-token prompt arrives; with
  // --long-prefill-token-threshold 16 the prompt is prefilled 16 tokens a step beside them.
  FakeModelSpec spec;
  spec.step_delay_us = 200;  // the short requests still decode while the long prompt prefills
  Rng rng(7);
  std::vector<GenerateRequest> reqs;
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; i < 5; ++i) {
    const int32_t len = i == 4 ? 300 : 6 + i;
    const int32_t max_tokens = i == 4 ? 4 : 60;
    reqs.push_back(
        greedy_request(random_tokens(rng, len, spec.vocab), max_tokens, "f" + std::to_string(i)));
    want.push_back(reference_greedy(spec, reqs.back().prompt_token_ids, max_tokens, {}));
  }
  for (int32_t threshold : {0, 16}) {
    auto exec = std::make_shared<FakeExecutor>(spec);
    EngineConfig cfg = config_with(64, 8);
    cfg.long_prefill_token_threshold = threshold;
    Engine engine(exec, cfg);
    Collector col;
    for (int i = 0; i < 4; ++i) engine.submit(reqs[size_t(i)], col.cb());
    col.wait_tokens("f0", 2);
    engine.submit(reqs[4], col.cb());
    col.wait_finished(5);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(col.get(reqs[i].request_id).outputs.at(0).token_ids, want[i])
          << "request " << i << " threshold " << threshold;
    }
    // Steps: the four short prompts (30 tokens) at once, then at most 16 prompt tokens beside
    // four decodes; without the threshold the prompt takes the whole budget.
    if (threshold > 0) {
      EXPECT_LE(exec->max_batch_tokens(), 30);
    } else {
      EXPECT_EQ(exec->max_batch_tokens(), 64);
    }
    expect_pool_drained(engine);
  }
  // Bad settings are errors naming them.
  auto exec = std::make_shared<FakeExecutor>(spec);
  EngineConfig bad = config_with(64, 8);
  bad.long_prefill_token_threshold = -1;
  EXPECT_THROW(Engine(exec, bad), Error);
  bad.long_prefill_token_threshold = 0;
  bad.max_num_partial_prefills = 2;
  bad.max_long_partial_prefills = 3;
  EXPECT_THROW(Engine(exec, bad), Error);
  bad.max_num_partial_prefills = 0;
  bad.max_long_partial_prefills = 1;
  EXPECT_THROW(Engine(exec, bad), Error);
  // More than one partial prefill without a threshold: 4 % of max_model_len, as vLLM.
  EngineConfig partial = config_with(64, 8);
  partial.max_num_partial_prefills = 2;
  const EngineConfig resolved = resolve_config(partial, *exec);
  EXPECT_EQ(resolved.max_model_len, 512);
  EXPECT_EQ(resolved.long_prefill_token_threshold, 20);
}

// ---- Prefix caching ---------------------------------------------------------------------------

TEST(Engine, PrefixCacheHitGivesIdenticalTokensAndShowsInCounters) {
  FakeModelSpec spec;  // block size 4
  Rng rng(7);
  const std::vector<int32_t> p = random_tokens(rng, 22, spec.vocab);  // 5 full blocks + 2
  auto exec = std::make_shared<FakeExecutor>(spec);
  Engine engine(exec, config_with(2048, 16));
  auto run = [&](std::vector<int32_t> prompt) {
    auto res = engine.generate({greedy_request(prompt, 10)});
    EXPECT_EQ(res[0].outputs.at(0).token_ids, reference_greedy(spec, prompt, 10));
    return res[0];
  };
  const auto first = run(p);
  EXPECT_EQ(first.num_cached_tokens, 0);
  EXPECT_EQ(engine.stats().prefix_cache_hits, 0);
  EXPECT_EQ(engine.stats().prefix_cache_queries, 22);

  const auto again = run(p);
  EXPECT_EQ(again.num_cached_tokens, 20);
  EXPECT_EQ(engine.stats().prefix_cache_hits, 20);
  EXPECT_EQ(engine.stats().prefix_cache_queries, 44);
  EXPECT_EQ(again.outputs[0].token_ids, first.outputs[0].token_ids);

  // Shared first 3 blocks, then a different tail.
  std::vector<int32_t> q(p.begin(), p.begin() + 12);
  q.push_back((p[12] + 1) % spec.vocab);
  q.push_back(5);
  EXPECT_EQ(run(q).num_cached_tokens, 12);
  // A prompt of exactly 5 blocks reuses 4: the block holding its last token is computed.
  EXPECT_EQ(run(std::vector<int32_t>(p.begin(), p.begin() + 20)).num_cached_tokens, 16);
  // Generated tokens are cached too: prompt + first output continues from 7 cached blocks.
  std::vector<int32_t> cont = p;
  cont.insert(cont.end(), first.outputs[0].token_ids.begin(), first.outputs[0].token_ids.end());
  EXPECT_EQ(run(cont).num_cached_tokens, 28);
  expect_pool_drained(engine);
  EXPECT_GT(engine.stats().blocks_cached, 0);

  // The same requests with prefix caching off: identical tokens, no hits.
  EngineConfig off = config_with(2048, 16);
  off.enable_prefix_caching = false;
  Engine plain(std::make_shared<FakeExecutor>(spec), off);
  auto res = plain.generate({greedy_request(p, 10), greedy_request(p, 10)});
  EXPECT_EQ(res[0].outputs[0].token_ids, first.outputs[0].token_ids);
  EXPECT_EQ(res[1].outputs[0].token_ids, first.outputs[0].token_ids);
  EXPECT_EQ(plain.stats().prefix_cache_hits, 0);
  EXPECT_EQ(plain.stats().blocks_cached, 0);
}

// The finished output carries when the request arrived, was first scheduled and sampled its first
// and last tokens (in that order; only the finished output has them), and the stats count the
// steps by their tokens (what the server's iteration_tokens_total and the queue / prefill /
// decode histograms are made of).
TEST(Engine, FinishedOutputCarriesTheRequestsTimesAndStatsCountStepsByTokens) {
  FakeModelSpec spec;
  Rng rng(11);
  Engine engine(std::make_shared<FakeExecutor>(spec), config_with(8, 16));  // chunks of 8
  Collector col;
  const std::string id =
      engine.submit(greedy_request(random_tokens(rng, 20, spec.vocab), 4), col.cb());
  col.wait_finished(1);
  std::lock_guard lk(col.mu);
  const std::vector<RequestOutput>& outs = col.raw.at(id);
  ASSERT_FALSE(outs.empty());
  const RequestTimes& t = outs.back().times;
  using TimePoint = std::chrono::steady_clock::time_point;
  EXPECT_NE(t.arrival, TimePoint{});
  EXPECT_LE(t.arrival, t.first_scheduled);
  EXPECT_LT(t.first_scheduled, t.first_token);  // three chunks of prompt before the first token
  EXPECT_LT(t.first_token, t.last_token);
  for (size_t i = 0; i + 1 < outs.size(); ++i) EXPECT_EQ(outs[i].times.arrival, TimePoint{});

  const EngineStats s = engine.stats();
  int64_t steps = 0;
  for (int64_t n : s.steps_by_tokens_log2) steps += n;
  EXPECT_EQ(steps, s.num_steps);
  EXPECT_EQ(s.steps_by_tokens_log2[3], 2);  // two prompt chunks of 8 tokens
  EXPECT_EQ(s.steps_by_tokens_log2[2], 1);  // the last 4
  EXPECT_EQ(s.steps_by_tokens_log2[0], 3);  // three decode steps of one token
}

TEST(Engine, CachedBlocksAreEvictedWhenThePoolNeedsRoom) {
  FakeModelSpec spec;
  spec.num_blocks = 12;
  spec.max_model_len = 48;
  auto exec = std::make_shared<FakeExecutor>(spec);
  Engine engine(exec, config_with(2048, 16));
  Rng rng(3);
  for (int i = 0; i < 6; ++i) {
    const auto prompt = random_tokens(rng, 20, spec.vocab);
    auto res = engine.generate({greedy_request(prompt, 8)});
    EXPECT_EQ(res[0].outputs[0].token_ids, reference_greedy(spec, prompt, 8));
  }
  EXPECT_GT(engine.stats().evictions, 0);
  expect_pool_drained(engine);
}

// ---- Preemption -------------------------------------------------------------------------------

TEST(Engine, PreemptionWithATinyPoolGivesIdenticalTokens) {
  FakeModelSpec spec;
  spec.num_blocks = 16;  // 64 tokens for 6 requests needing ~45 each
  spec.max_model_len = 64;
  Rng rng(11);
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    reqs.push_back(greedy_request(random_tokens(rng, 10 + 2 * i, spec.vocab), 25 + i,
                                  "p" + std::to_string(i)));
  }
  // A seeded random-sampling request too: its generator must continue across recomputes.
  GenerateRequest sampled = reqs[0];
  sampled.request_id = "seeded";
  sampled.params.temperature = 0.9f;
  sampled.params.top_k = 20;
  sampled.params.seed = 1234;
  reqs.push_back(sampled);
  std::vector<int32_t> sampled_alone;
  {
    FakeModelSpec big = spec;
    big.num_blocks = 64;
    Engine alone(std::make_shared<FakeExecutor>(big), config_with(2048, 16));
    sampled_alone = alone.generate({sampled})[0].outputs[0].token_ids;
  }
  for (bool caching : {true, false}) {
    EngineConfig cfg = config_with(2048, 16);
    cfg.enable_prefix_caching = caching;
    Engine engine(std::make_shared<FakeExecutor>(spec), cfg);
    auto res = engine.generate(reqs);
    for (size_t i = 0; i + 1 < reqs.size(); ++i) {
      EXPECT_EQ(res[i].outputs[0].token_ids,
                reference_greedy(spec, reqs[i].prompt_token_ids, *reqs[i].params.max_tokens))
          << i << " caching " << caching;
    }
    EXPECT_EQ(res.back().outputs[0].token_ids, sampled_alone);
    EXPECT_GT(engine.stats().preemptions, 0);
    expect_pool_drained(engine);
  }
}

TEST(Engine, LowestPriorityIsPreemptedFirst) {
  FakeModelSpec spec;
  spec.num_blocks = 10;
  spec.max_model_len = 40;
  Rng rng(5);
  auto exec = std::make_shared<FakeExecutor>(spec);
  Engine engine(exec, config_with(2048, 16));
  Collector col;
  // Two requests that each grow to 10 blocks; the important one must never be preempted, so it
  // finishes in exactly 1 (prefill) + 29 steps of decode whatever the other does.
  GenerateRequest hi = greedy_request(random_tokens(rng, 8, spec.vocab), 32, "hi");
  hi.priority = -1;
  GenerateRequest lo = greedy_request(random_tokens(rng, 8, spec.vocab), 32, "lo");
  lo.priority = 5;
  exec->close_gate();
  engine.submit(lo, col.cb());
  engine.submit(hi, col.cb());
  exec->open_gate();
  col.wait_finished(2);
  EXPECT_EQ(col.get("hi").outputs[0].token_ids, reference_greedy(spec, hi.prompt_token_ids, 32));
  EXPECT_EQ(col.get("lo").outputs[0].token_ids, reference_greedy(spec, lo.prompt_token_ids, 32));
  EXPECT_GT(engine.stats().preemptions, 0);
  // "hi" produced one token per step from its first output on (never preempted).
  const auto& outs = col.raw.at("hi");
  for (const auto& o : outs) {
    ASSERT_LE(o.outputs.size(), 1u);
    if (!o.outputs.empty()) {
      EXPECT_EQ(o.outputs[0].token_ids.size(), 1u);
    }
  }
  EXPECT_EQ(outs.size(), 32u);
}

// ---- Sampling through the engine --------------------------------------------------------------

TEST(Engine, SeededSamplingReproducesWhateverElseIsInTheBatch) {
  FakeModelSpec spec;
  Rng rng(21);
  GenerateRequest target;
  target.request_id = "target";
  target.prompt_token_ids = random_tokens(rng, 13, spec.vocab);
  target.params.temperature = 1.0f;
  target.params.top_p = 0.95f;
  target.params.seed = 42;
  target.params.max_tokens = 24;
  target.params.n = 3;

  Engine alone_engine(std::make_shared<FakeExecutor>(spec), config_with(2048, 16));
  const auto alone = alone_engine.generate({target})[0];
  ASSERT_EQ(alone.outputs.size(), 3u);
  // The n sequences use different streams.
  EXPECT_NE(alone.outputs[0].token_ids, alone.outputs[1].token_ids);
  EXPECT_NE(alone.outputs[1].token_ids, alone.outputs[2].token_ids);

  Engine busy(std::make_shared<FakeExecutor>(spec), config_with(8, 5));
  std::vector<GenerateRequest> batch;
  for (int i = 0; i < 8; ++i) {
    GenerateRequest o;
    o.prompt_token_ids = random_tokens(rng, 1 + 5 * i, spec.vocab);
    o.params.temperature = 0.5f + 0.1f * float(i);
    o.params.max_tokens = 5 + i;
    o.params.n = 1 + i % 2;
    if (i % 3 == 0) o.params.seed = uint64_t(i);
    batch.push_back(o);
    if (i == 4) batch.push_back(target);
  }
  const auto res = busy.generate(batch);
  for (const auto& r : res) {
    if (r.request_id != "target") continue;
    ASSERT_EQ(r.outputs.size(), 3u);
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(r.outputs[k].token_ids, alone.outputs[k].token_ids);
  }
  // A different seed gives a different continuation.
  target.params.seed = 43;
  const auto other = alone_engine.generate({target})[0];
  EXPECT_NE(other.outputs[0].token_ids, alone.outputs[0].token_ids);
}

TEST(Engine, UnseededRequestsFollowTheEngineSeedAndSubmissionOrder) {
  FakeModelSpec spec;
  Rng rng(2);
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    GenerateRequest r;
    r.prompt_token_ids = random_tokens(rng, 6, spec.vocab);
    r.params.max_tokens = 16;
    reqs.push_back(r);
  }
  auto run = [&](uint64_t seed) {
    EngineConfig cfg = config_with(2048, 16);
    cfg.seed = seed;
    Engine engine(std::make_shared<FakeExecutor>(spec), cfg);
    std::vector<std::vector<int32_t>> out;
    for (const auto& r : engine.generate(reqs)) out.push_back(r.outputs.at(0).token_ids);
    return out;
  };
  const auto a = run(1);
  EXPECT_EQ(a, run(1));
  EXPECT_NE(a, run(2));
  EXPECT_NE(a[0], a[1]);
}

TEST(Engine, NGreaterThanOneSharesThePromptBlocks) {
  FakeModelSpec spec;
  Rng rng(8);
  const auto prompt = random_tokens(rng, 30, spec.vocab);  // 7 full blocks + 2
  const auto want = reference_greedy(spec, prompt, 6);
  for (bool caching : {true, false}) {
    EngineConfig cfg = config_with(2048, 16);
    cfg.enable_prefix_caching = caching;
    Engine engine(std::make_shared<FakeExecutor>(spec), cfg);
    GenerateRequest r = greedy_request(prompt, 6);
    r.params.n = 4;
    const auto res = engine.generate({r})[0];
    ASSERT_EQ(res.outputs.size(), 4u);
    for (const auto& o : res.outputs) EXPECT_EQ(o.token_ids, want);
    // The prompt is computed once; the three others only recompute the partial last block.
    const EngineStats s = engine.stats();
    EXPECT_EQ(s.tokens_computed, 30 + 3 * 2 + 4 * 5) << "caching " << caching;
    expect_pool_drained(engine);
  }
}

TEST(Engine, LogprobsAreTheModelsLogSoftmax) {
  FakeModelSpec spec;
  Rng rng(4);
  GenerateRequest r = greedy_request(random_tokens(rng, 9, spec.vocab), 8);
  r.params.logprobs = 3;
  r.params.temperature = 0.7f;
  r.params.seed = 5;
  Engine engine(std::make_shared<FakeExecutor>(spec), config_with(2048, 16));
  const auto res = engine.generate({r})[0].outputs[0];
  ASSERT_EQ(res.logprobs.size(), res.token_ids.size());
  std::vector<int32_t> hist = r.prompt_token_ids;
  std::vector<float> l(size_t(spec.vocab));
  for (size_t i = 0; i < res.token_ids.size(); ++i) {
    reference_logits(spec, hist, l.data());
    double sum = 0;
    for (float x : l) sum += std::exp(double(x));
    const double lse = std::log(sum);
    const auto& lp = res.logprobs[i];
    EXPECT_EQ(lp.token_id, res.token_ids[i]);
    EXPECT_NEAR(lp.logprob, l[size_t(lp.token_id)] - lse, 1e-4);
    ASSERT_EQ(lp.top.size(), 3u);
    const float best = *std::max_element(l.begin(), l.end());
    EXPECT_NEAR(lp.top[0].logprob, best - lse, 1e-4);
    EXPECT_GE(lp.top[0].logprob, lp.top[1].logprob);
    EXPECT_GE(lp.top[1].logprob, lp.top[2].logprob);
    int32_t rank = 1;
    for (float x : l) rank += x > l[size_t(lp.token_id)] ? 1 : 0;
    EXPECT_EQ(lp.rank, rank);
    hist.push_back(res.token_ids[i]);
  }
}

// ---- Stop conditions and text -----------------------------------------------------------------

// A model whose greedy output after a 1-token prompt is `script[1..]` (then wraps around).
std::shared_ptr<FakeExecutor> scripted(std::vector<int32_t> script) {
  FakeModelSpec spec;
  spec.script = std::move(script);
  return std::make_shared<FakeExecutor>(spec);
}

// Ids: a..z = 1..26, ' ' = 27, é = 28 29, € = 30 31 32, eos = 0.
constexpr int32_t kA = 1, kB = 2, kSpace = 27, kS = 19, kT = 20, kO = 15, kP = 16, kX = 24;

TEST(Engine, StopStringsAcrossTokensAreHeldBackAndCut) {
  auto decoder = std::make_shared<FakeDecoder>();
  Engine engine(scripted({kX, kA, kB, kSpace, kS, kT, kX, kS, kT, kO, kP, kA, kA}),
                config_with(2048, 16), decoder);
  Collector col;
  GenerateRequest r = greedy_request({kX}, 20, "s");
  r.params.stop = {"stop", "zzz"};
  engine.submit(r, col.cb());
  col.wait_finished(1);
  const auto res = col.get("s").outputs.at(0);
  EXPECT_EQ(res.finish_reason, FinishReason::kStop);
  EXPECT_EQ(res.stop_string, "stop");
  EXPECT_EQ(res.text, "ab stx");
  EXPECT_EQ(res.token_ids, (std::vector<int32_t>{kA, kB, kSpace, kS, kT, kX, kS, kT, kO, kP}));
  // Streaming: text was released step by step, never a piece of the stop string too early.
  std::string seen;
  std::vector<std::string> deltas;
  for (const auto& o : col.raw.at("s")) {
    for (const auto& d : o.outputs) deltas.push_back(d.text);
  }
  ASSERT_EQ(deltas.size(), 10u);
  EXPECT_EQ(deltas[0], "a");
  EXPECT_EQ(deltas[2], " ");
  EXPECT_EQ(deltas[3], "");     // "s" held
  EXPECT_EQ(deltas[4], "");     // "st" held
  EXPECT_EQ(deltas[5], "stx");  // released: cannot become "stop" any more
  EXPECT_EQ(deltas[6], "");
  EXPECT_EQ(deltas[9], "");

  // include_stop_str_in_output keeps it.
  r.request_id = "inc";
  r.params.include_stop_str_in_output = true;
  engine.submit(r, col.cb());
  col.wait_finished(2);
  EXPECT_EQ(col.get("inc").outputs.at(0).text, "ab stxstop");
}

TEST(Engine, MultiByteCharactersAndStopStringsSplitOverTokens) {
  auto decoder = std::make_shared<FakeDecoder>();
  Engine engine(scripted({kX, kA, 28, 29, kB, 30, 31, 32, kA, 28, 29, kS}), config_with(2048, 16),
                decoder);
  Collector col;
  GenerateRequest r = greedy_request({kX}, 11, "u");
  engine.submit(r, col.cb());
  r.request_id = "stop";
  r.params.stop = {
      "\xE2\x82\xAC"
      "a\xC3\xA9"};  // "€aé"
  engine.submit(r, col.cb());
  col.wait_finished(2);
  const auto u = col.get("u").outputs.at(0);
  EXPECT_EQ(u.text,
            "a\xC3\xA9"
            "b\xE2\x82\xAC"
            "a\xC3\xA9s");
  EXPECT_EQ(u.finish_reason, FinishReason::kLength);
  for (const auto& o : col.raw.at("u")) {
    for (const auto& d : o.outputs) {
      EXPECT_EQ(FakeDecoder::sanitize(d.text), d.text) << "a delta split a character";
    }
  }
  const auto s = col.get("stop").outputs.at(0);
  EXPECT_EQ(s.text,
            "a\xC3\xA9"
            "b");
  EXPECT_EQ(s.finish_reason, FinishReason::kStop);
  EXPECT_EQ(s.token_ids.size(), 10u);
}

TEST(Engine, EosStopTokensMinTokensAndIgnoreEos) {
  auto decoder = std::make_shared<FakeDecoder>();
  // The model always prefers EOS (0).
  Engine engine(scripted({0}), config_with(2048, 16, {0}), decoder);
  GenerateRequest r = greedy_request({kX}, 10);
  auto res = engine.generate({r})[0].outputs[0];
  EXPECT_EQ(res.token_ids, std::vector<int32_t>{0});
  EXPECT_EQ(res.finish_reason, FinishReason::kStop);
  EXPECT_EQ(res.text, "");
  EXPECT_FALSE(res.stop_token_id.has_value());

  r.params.min_tokens = 3;
  res = engine.generate({r})[0].outputs[0];
  ASSERT_EQ(res.token_ids.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_NE(res.token_ids[size_t(i)], 0);
  EXPECT_EQ(res.token_ids[3], 0);
  EXPECT_EQ(res.finish_reason, FinishReason::kStop);
  EXPECT_EQ(res.text, decoder->decode(std::span(res.token_ids.data(), 3), true));

  r.params.min_tokens = 0;
  r.params.ignore_eos = true;
  res = engine.generate({r})[0].outputs[0];
  EXPECT_EQ(res.token_ids, std::vector<int32_t>(10, 0));
  EXPECT_EQ(res.finish_reason, FinishReason::kLength);

  // A request-level EOS override: here EOS is a letter, and 0 is a stop token id instead.
  Engine letters(scripted({kX, kA, kB, kA, kB}), config_with(2048, 16, {0}), decoder);
  GenerateRequest q = greedy_request({kX}, 10);
  q.eos_token_ids = std::vector<int32_t>{kB};
  res = letters.generate({q})[0].outputs[0];
  EXPECT_EQ(res.token_ids, (std::vector<int32_t>{kA, kB}));
  EXPECT_EQ(res.text, "a");
  q.eos_token_ids.reset();
  q.params.stop_token_ids = {kB};
  q.params.min_tokens = 2;
  res = letters.generate({q})[0].outputs[0];
  EXPECT_EQ(res.token_ids.size(), 4u);  // the first b is masked by min_tokens
  EXPECT_EQ(res.token_ids.back(), kB);
  EXPECT_EQ(res.stop_token_id, kB);
  EXPECT_EQ(res.finish_reason, FinishReason::kStop);
}

TEST(Engine, StreamedTextEqualsTheFullDecode) {
  FakeModelSpec spec;
  auto decoder = std::make_shared<FakeDecoder>();
  Engine engine(std::make_shared<FakeExecutor>(spec), config_with(2048, 16, {0}), decoder);
  Rng rng(17);
  for (int i = 0; i < 10; ++i) {
    GenerateRequest r;
    r.prompt_token_ids = random_tokens(rng, 5, spec.vocab);
    r.params.max_tokens = 30;
    r.params.seed = uint64_t(i);
    auto stream = engine.submit_stream(r);
    std::string text;
    std::vector<int32_t> ids;
    while (auto o = stream->next()) {
      for (const auto& d : o->outputs) {
        text += d.text;
        ids.insert(ids.end(), d.token_ids.begin(), d.token_ids.end());
      }
    }
    EXPECT_TRUE(stream->done());
    if (!ids.empty() && ids.back() == 0) ids.pop_back();
    EXPECT_EQ(text, decoder->decode(ids, true));
  }
}

// ---- Admission, queue, abort, shutdown --------------------------------------------------------

TEST(Engine, RefusesRequestsThatCannotFitAndBadParameters) {
  FakeModelSpec spec;
  spec.max_model_len = 64;
  Engine engine(std::make_shared<FakeExecutor>(spec), config_with(2048, 16));
  EXPECT_EQ(engine.config().max_model_len, 64);
  EXPECT_NO_THROW(engine.generate({greedy_request(std::vector<int32_t>(60, 1), 4)}));
  try {
    engine.submit(greedy_request(std::vector<int32_t>(60, 1), 5), nullptr);
    FAIL() << "expected InvalidRequestError";
  } catch (const InvalidRequestError& e) {
    EXPECT_NE(std::string(e.what()).find("max_model_len (64)"), std::string::npos) << e.what();
  }
  GenerateRequest unset = greedy_request(std::vector<int32_t>(64, 1), 1);
  unset.params.max_tokens.reset();
  EXPECT_THROW(engine.submit(unset, nullptr), InvalidRequestError);
  auto bad = [&](auto mutate) {
    GenerateRequest r = greedy_request({1, 2, 3}, 4);
    mutate(r);
    EXPECT_THROW(engine.submit(r, nullptr), InvalidRequestError);
  };
  bad([](GenerateRequest& r) { r.prompt_token_ids.clear(); });
  bad([](GenerateRequest& r) { r.prompt_token_ids[1] = 64; });
  bad([](GenerateRequest& r) { r.params.temperature = -1; });
  bad([](GenerateRequest& r) { r.params.top_p = 0; });
  bad([](GenerateRequest& r) { r.params.n = 0; });
  bad([](GenerateRequest& r) { r.params.min_tokens = 5; });
  bad([](GenerateRequest& r) { r.params.logit_bias = {{99, 1.0f}}; });
  bad([](GenerateRequest& r) { r.params.stop = {"x"}; });  // no decoder
  bad([](GenerateRequest& r) { r.params.logprobs = 21; });
  // Refused requests leave no trace; a bad request in a batch runs none of it.
  const int64_t steps = engine.stats().num_steps;
  GenerateRequest bad_one = greedy_request({1}, 100);
  EXPECT_THROW(engine.generate({greedy_request({1}, 2), bad_one}), InvalidRequestError);
  EXPECT_EQ(engine.stats().num_steps, steps);
  // The config itself is checked against the pool.
  FakeModelSpec tiny = spec;
  tiny.num_blocks = 4;  // 16 tokens
  EngineConfig cfg;
  cfg.max_model_len = 32;
  EXPECT_THROW(Engine(std::make_shared<FakeExecutor>(tiny), cfg), Error);
  Engine fits(std::make_shared<FakeExecutor>(tiny), EngineConfig{});
  EXPECT_EQ(fits.config().max_model_len, 16);
  // ... and against how many top logprobs the executor can return.
  FakeModelSpec few = spec;
  few.max_top_logprobs = 8;
  EngineConfig many;
  many.max_logprobs = 9;
  try {
    Engine e(std::make_shared<FakeExecutor>(few), many);
    ADD_FAILURE() << "max_logprobs above the executor's limit was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("max_logprobs 9"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("(8)"));
  }
  many.max_logprobs = 8;
  Engine at_limit(std::make_shared<FakeExecutor>(few), many);
  EXPECT_EQ(at_limit.config().max_logprobs, 8);
}

TEST(Engine, FullQueueFailsFastAndDuplicateIdsAreRefused) {
  FakeModelSpec spec;
  auto exec = std::make_shared<FakeExecutor>(spec);
  EngineConfig cfg = config_with(2048, 16);
  cfg.max_queue = 2;
  Engine engine(exec, cfg);
  Collector col;
  exec->close_gate();
  engine.submit(greedy_request({1, 2}, 3, "a"), col.cb());
  exec->wait_entered(1);  // "a" has started: it no longer counts as waiting
  engine.submit(greedy_request({1, 2}, 3, "b"), col.cb());
  EXPECT_THROW(engine.submit(greedy_request({1, 2}, 3, "b"), col.cb()), InvalidRequestError);
  engine.submit(greedy_request({1, 2}, 3, "c"), col.cb());
  EXPECT_THROW(engine.submit(greedy_request({1, 2}, 3, "d"), col.cb()), QueueFullError);
  EXPECT_FALSE(engine.abort("d"));
  exec->open_gate();
  col.wait_finished(3);
  EXPECT_EQ(col.get("c").outputs[0].token_ids.size(), 3u);
  engine.submit(greedy_request({1, 2}, 3, "d"), col.cb());  // room again; "a" reusable too
  engine.submit(greedy_request({1, 2}, 3, "a"), col.cb());
  col.wait_finished(5);
}

// --max-queue-wait-ms: a request is refused when the requests waiting times the measured time
// between starts exceeds the bound; nothing is refused before a gap was measured, or with no queue.
TEST(Engine, AdmissionByExpectedWait) {
  FakeModelSpec spec;
  auto exec = std::make_shared<FakeExecutor>(spec);
  EngineConfig cfg = config_with(2048, 1);
  cfg.max_queue = 0;
  cfg.max_queue_wait_s = 1e-9;
  Engine engine(exec, cfg);
  Collector col;
  exec->close_gate();
  engine.submit(greedy_request({1, 2}, 3, "a"), col.cb());
  exec->wait_entered(1);
  // No gap measured yet: any queue is admitted.
  for (const char* id : {"b", "c", "d"}) engine.submit(greedy_request({1, 2}, 3, id), col.cb());
  exec->open_gate();
  col.wait_finished(4);  // b, c and d started while others waited: gaps measured
  engine.submit(greedy_request({1, 2}, 3, "e"), col.cb());  // no queue: admitted
  col.wait_finished(5);
  exec->close_gate();
  engine.submit(greedy_request({1, 2}, 3, "f"), col.cb());
  exec->wait_entered(exec->num_forwards() + 1);
  engine.submit(greedy_request({1, 2}, 3, "g"), col.cb());  // nothing waiting yet: admitted
  try {
    engine.submit(greedy_request({1, 2}, 3, "h"), col.cb());
    ADD_FAILURE() << "h was admitted behind g";
  } catch (const QueueFullError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("expected wait"));
  }
  exec->open_gate();
  col.wait_finished(7);
  EngineConfig bad = cfg;
  bad.max_queue_wait_s = -1;
  EXPECT_ANY_THROW(Engine(std::make_shared<FakeExecutor>(spec), bad));
}

TEST(Engine, AbortAtAnyPointFreesBlocks) {
  FakeModelSpec spec;
  auto exec = std::make_shared<FakeExecutor>(spec);
  Engine engine(exec, config_with(2048, 16));
  Collector col;
  exec->close_gate();
  engine.submit(greedy_request(std::vector<int32_t>(30, 3), 400, "long"), col.cb());
  exec->allow(6);
  exec->wait_entered(7);  // six steps done, the engine is held in the seventh
  col.wait_tokens("long", 6);
  EXPECT_GT(engine.stats().blocks_used, 0);
  EXPECT_TRUE(engine.abort("long"));
  exec->open_gate();
  col.wait_finished(1);
  auto res = col.get("long");
  EXPECT_EQ(res.outputs[0].finish_reason, FinishReason::kAbort);
  EXPECT_LT(res.outputs[0].token_ids.size(), 400u);
  EXPECT_TRUE(col.raw.at("long").back().finished);
  expect_pool_drained(engine);
  EXPECT_EQ(engine.stats().requests_aborted, 1);
  EXPECT_FALSE(engine.abort("long"));

  // Abort while waiting (the engine is held inside a step), and n > 1 before the fork.
  exec->close_gate();
  engine.submit(greedy_request({1, 2, 3}, 50, "running"), col.cb());
  exec->wait_entered(exec->num_forwards() + 1);
  GenerateRequest multi = greedy_request({4, 5, 6}, 50, "multi");
  multi.params.n = 3;
  engine.submit(multi, col.cb());
  engine.submit(greedy_request({7}, 50, "queued"), col.cb());
  EXPECT_TRUE(engine.abort("queued"));
  EXPECT_TRUE(engine.abort("multi"));
  exec->open_gate();
  col.wait_finished(3);
  EXPECT_EQ(col.get("queued").outputs.at(0).finish_reason, FinishReason::kAbort);
  const auto m = col.get("multi");
  ASSERT_EQ(m.outputs.size(), 3u);
  for (const auto& o : m.outputs) EXPECT_EQ(o.finish_reason, FinishReason::kAbort);
  engine.abort("running");
  col.wait_finished(4);
  expect_pool_drained(engine);
}

TEST(Engine, ShutdownAbortsLiveRequests) {
  FakeModelSpec spec;
  // 5 ms per step: the 400-token request is still running (2 s) when shutdown comes, however
  // loaded the machine is; without the delay it could finish first (seen in CI).
  spec.step_delay_us = 5000;
  auto engine =
      std::make_unique<Engine>(std::make_shared<FakeExecutor>(spec), config_with(2048, 16));
  auto stream = engine->submit_stream(greedy_request({1, 2}, 400));
  auto first = stream->next();
  ASSERT_TRUE(first);
  engine->shutdown();
  std::optional<RequestOutput> last;
  while (auto o = stream->next()) last = std::move(o);
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->finished);
  EXPECT_EQ(last->outputs.at(0).finish_reason, FinishReason::kAbort);
  EXPECT_FALSE(last->error.empty());
  EXPECT_THROW(engine->submit(greedy_request({1}, 1), nullptr), EngineStoppedError);
  engine.reset();
}

}  // namespace
}  // namespace inferd
