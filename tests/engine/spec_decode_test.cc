// Speculative decoding (issue 26) in the engine, on the fake model (whose logits come from the
// token ids it reads back from its KV cache, so a draft's KV left behind after a rejection
// changes the output): the n-gram proposer; every request gives exactly the tokens, text,
// logprobs and finish it gives without speculation (greedy and seeded sampling, penalties, stop
// strings and max_tokens cutting inside an accepted run, n > 1, prefix caching, preemption,
// chunked prefill, k = 1..7); the acceptance counters; the rejection rule's distribution
// (chi-square over 10^5 draws of two tokens on an 8-token vocabulary).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "backend/sampling.h"
#include "engine/fake_model.h"
#include "engine/ngram_proposer.h"
#include "inferd/engine.h"

namespace inferd {
namespace {

using testing::FakeDecoder;
using testing::FakeExecutor;
using testing::FakeModelSpec;

TEST(NgramProposer, FirstEarlierOccurrenceOfTheLongestSuffix) {
  std::vector<int32_t> out;
  // Suffix [2, 3] occurs at 1: the draft is what followed it.
  propose_ngram(std::vector<int32_t>{1, 2, 3, 4, 5, 9, 2, 3}, 1, 3, 4, out);
  EXPECT_EQ(out, (std::vector<int32_t>{4, 5, 9, 2}));
  // k cuts the draft; the longest n that matches wins (n = 3: [9, 2, 3] at 0 -> 7).
  propose_ngram(std::vector<int32_t>{9, 2, 3, 7, 1, 2, 3, 8, 9, 2, 3}, 1, 3, 2, out);
  EXPECT_EQ(out, (std::vector<int32_t>{7, 1}));
  // Below prompt_lookup_min nothing is proposed.
  propose_ngram(std::vector<int32_t>{5, 6, 7, 6}, 2, 3, 4, out);
  EXPECT_TRUE(out.empty());
  propose_ngram(std::vector<int32_t>{5, 6, 7, 6}, 1, 3, 4, out);
  EXPECT_EQ(out, (std::vector<int32_t>{7, 6}));  // stops at the end of the tokens
  propose_ngram(std::vector<int32_t>{}, 1, 3, 4, out);
  EXPECT_TRUE(out.empty());
  propose_ngram(std::vector<int32_t>{4}, 1, 3, 4, out);
  EXPECT_TRUE(out.empty());
  // A run of one token proposes more of it.
  propose_ngram(std::vector<int32_t>{3, 3, 3, 3}, 2, 2, 5, out);
  EXPECT_EQ(out, (std::vector<int32_t>{3, 3}));
}

GenerateRequest request(std::string id, std::vector<int32_t> prompt, int32_t max_tokens) {
  GenerateRequest r;
  r.request_id = std::move(id);
  r.prompt_token_ids = std::move(prompt);
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  return r;
}

// A mix of what must not change: greedy, seeded and unseeded sampling with top-p / top-k,
// penalties and logit bias, logprobs, stop strings, stop ids, EOS, min_tokens, n = 2.
std::vector<GenerateRequest> mixed_requests(int32_t vocab) {
  std::vector<GenerateRequest> reqs;
  std::vector<int32_t> base;
  for (int32_t i = 0; i < 40; ++i) base.push_back(1 + (i * 7) % 20);
  auto prompt = [&](int32_t off, int32_t len) {
    return std::vector<int32_t>(base.begin() + off, base.begin() + off + len);
  };
  reqs.push_back(request("greedy", prompt(0, 30), 40));
  reqs.push_back(request("greedy-short", prompt(3, 9), 7));
  GenerateRequest s = request("seeded", prompt(1, 25), 30);
  s.params.temperature = 0.8f;
  s.params.top_p = 0.9f;
  s.params.seed = 1234;
  s.params.logprobs = 3;
  reqs.push_back(s);
  GenerateRequest u = request("unseeded-topk", prompt(2, 20), 25);
  u.params.temperature = 1.0f;
  u.params.top_k = 5;
  reqs.push_back(u);
  GenerateRequest pen = request("penalties", prompt(0, 28), 30);
  pen.params.repetition_penalty = 1.3f;
  pen.params.frequency_penalty = 0.4f;
  pen.params.presence_penalty = 0.2f;
  pen.params.logit_bias = {{5, 1.5f}, {9, -2.0f}};
  pen.params.temperature = 0.7f;
  pen.params.seed = 77;
  reqs.push_back(pen);
  GenerateRequest stop = request("stop-string", prompt(0, 30), 60);
  stop.params.stop = {"T40T41", "qr"};
  reqs.push_back(stop);
  GenerateRequest ids = request("stop-ids", prompt(5, 20), 50);
  ids.params.stop_token_ids = {vocab - 1, 13};
  ids.params.min_tokens = 4;
  ids.params.logprobs = 0;
  reqs.push_back(ids);
  GenerateRequest n2 = request("n2", prompt(4, 22), 20);
  n2.params.n = 2;
  n2.params.temperature = 0.9f;
  n2.params.seed = 5;
  reqs.push_back(n2);
  GenerateRequest eos = request("eos", prompt(6, 18), 50);
  eos.eos_token_ids = std::vector<int32_t>{12};
  eos.params.min_tokens = 3;
  reqs.push_back(eos);
  return reqs;
}

struct EngineRun {
  std::vector<GenerateResult> results;
  EngineStats stats;
};

EngineRun run_engine(const FakeModelSpec& spec, EngineConfig cfg,
                     std::vector<GenerateRequest> reqs) {
  Engine engine(std::make_shared<FakeExecutor>(spec), cfg, std::make_shared<FakeDecoder>());
  EngineRun r;
  r.results = engine.generate(std::move(reqs));
  r.stats = engine.stats();
  return r;
}

void expect_same(const GenerateResult& a, const GenerateResult& b) {
  SCOPED_TRACE(a.request_id);
  EXPECT_EQ(a.error, b.error);
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    const SequenceResult &x = a.outputs[i], &y = b.outputs[i];
    EXPECT_EQ(x.token_ids, y.token_ids) << "sequence " << i;
    EXPECT_EQ(x.text, y.text);
    EXPECT_EQ(x.finish_reason, y.finish_reason);
    EXPECT_EQ(x.stop_token_id, y.stop_token_id);
    EXPECT_EQ(x.stop_string, y.stop_string);
    ASSERT_EQ(x.logprobs.size(), y.logprobs.size());
    for (size_t t = 0; t < x.logprobs.size(); ++t) {
      EXPECT_EQ(x.logprobs[t].token_id, y.logprobs[t].token_id);
      EXPECT_EQ(x.logprobs[t].logprob, y.logprobs[t].logprob);
      EXPECT_EQ(x.logprobs[t].rank, y.logprobs[t].rank);
      ASSERT_EQ(x.logprobs[t].top.size(), y.logprobs[t].top.size());
    }
  }
}

EngineConfig ngram(EngineConfig cfg, int32_t k, int32_t lo = 1, int32_t hi = 3) {
  cfg.speculative.method = SpeculativeConfig::Method::kNgram;
  cfg.speculative.num_speculative_tokens = k;
  cfg.speculative.prompt_lookup_min = lo;
  cfg.speculative.prompt_lookup_max = hi;
  cfg.speculative.disable_by_batch_size = 0;  // speculate in every step
  return cfg;
}

// A script with period 7 forces most tokens, so the output repeats and drafts are accepted;
// without it the logits are pseudo-random and most drafts are rejected.
FakeModelSpec spec_with(bool scripted, int32_t num_blocks) {
  FakeModelSpec spec;
  spec.vocab = 48;
  spec.num_blocks = num_blocks;
  spec.max_model_len = 160;
  if (scripted) spec.script = {3, 14, 15, 9, 26, 5, 35};
  return spec;
}

TEST(SpecDecode, OutputsEqualThoseWithoutSpeculation) {
  struct Case {
    bool scripted;
    int32_t num_blocks, budget, max_seqs;
    bool caching;
  };
  const Case cases[] = {{true, 256, 512, 16, true},
                        {false, 256, 512, 16, true},
                        {true, 48, 24, 4, true},
                        {false, 40, 16, 8, false},
                        {true, 42, 32, 16, false}};
  for (const Case& c : cases) {
    const FakeModelSpec spec = spec_with(c.scripted, c.num_blocks);
    EngineConfig base;
    base.max_num_batched_tokens = c.budget;
    base.max_num_seqs = c.max_seqs;
    base.enable_prefix_caching = c.caching;
    base.max_model_len = 160;
    const EngineRun want = run_engine(spec, base, mixed_requests(spec.vocab));
    for (int32_t k = 1; k <= 7; ++k) {
      SCOPED_TRACE(::testing::Message() << "scripted " << c.scripted << " blocks " << c.num_blocks
                                        << " budget " << c.budget << " k " << k);
      const EngineRun got = run_engine(spec, ngram(base, k), mixed_requests(spec.vocab));
      ASSERT_EQ(got.results.size(), want.results.size());
      for (size_t i = 0; i < want.results.size(); ++i) expect_same(got.results[i], want.results[i]);
      EXPECT_GT(got.stats.spec_num_drafts, 0);
      EXPECT_LE(got.stats.spec_num_accepted_tokens, got.stats.spec_num_draft_tokens);
      if (c.scripted) {
        // The repeating output is predicted: many drafts are accepted, and fewer steps run.
        EXPECT_GT(got.stats.spec_num_accepted_tokens * 5, got.stats.spec_num_draft_tokens * 2);
        if (k >= 2) {
          EXPECT_LT(got.stats.num_steps, want.stats.num_steps);
        }
      }
      EXPECT_EQ(got.stats.spec_accepted_per_pos[0] > 0, got.stats.spec_num_accepted_tokens > 0);
      for (int32_t j = 1; j < k; ++j)
        EXPECT_LE(got.stats.spec_accepted_per_pos[size_t(j)],
                  got.stats.spec_accepted_per_pos[size_t(j - 1)]);
      EXPECT_EQ(got.stats.blocks_used, 0);  // every block came back
    }
  }
}

TEST(SpecDecode, StopAndMaxTokensInsideAnAcceptedRun) {
  // The scripted output repeats with period 7; a run of 7 accepted drafts is cut by max_tokens,
  // by a stop string and by a stop id at every offset.
  const FakeModelSpec spec = spec_with(true, 256);
  EngineConfig base;
  base.max_model_len = 160;
  std::vector<GenerateRequest> reqs;
  for (int32_t m = 15; m < 29; ++m) {
    GenerateRequest r = request(fmt::format("max{}", m), {3, 14, 15, 9, 26, 5, 35, 3, 14}, m);
    reqs.push_back(r);
    GenerateRequest s = r;
    s.request_id = fmt::format("stop{}", m);
    s.params.max_tokens = 60;
    s.params.stop = {m % 2 ? "oT35" : "iz"};
    s.params.min_tokens = m - 14;
    reqs.push_back(s);
    GenerateRequest t = s;
    t.request_id = fmt::format("ids{}", m);
    t.params.stop.clear();
    t.params.stop_token_ids = {26};
    t.params.include_stop_str_in_output = m % 2 == 0;
    reqs.push_back(t);
  }
  const EngineRun want = run_engine(spec, base, reqs);
  const EngineRun got = run_engine(spec, ngram(base, 7), reqs);
  for (size_t i = 0; i < want.results.size(); ++i) expect_same(got.results[i], want.results[i]);
  EXPECT_GT(got.stats.spec_num_accepted_tokens, 0);
}

TEST(SpecDecode, PolicyTurnsSpeculationOffForLargeBatches) {
  const FakeModelSpec spec = spec_with(true, 256);
  EngineConfig cfg = ngram(EngineConfig(), 4);
  cfg.max_model_len = 160;
  cfg.speculative.disable_by_batch_size = 3;
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i)
    reqs.push_back(request(fmt::format("r{}", i), {3, 14, 15, 9, 26, 5, 35, 3}, 30 + 10 * i));
  const EngineRun many = run_engine(spec, cfg, reqs);
  // Six decode together first (no drafts); the last three finish alone (drafts).
  EXPECT_GT(many.stats.spec_num_drafts, 0);
  cfg.speculative.disable_by_batch_size = 1;
  reqs.resize(2);
  reqs[1].params.max_tokens = reqs[0].params.max_tokens;
  const EngineRun two = run_engine(spec, cfg, reqs);
  EXPECT_EQ(two.stats.spec_num_drafts, 0);
}

TEST(SpecDecode, RejectedSequencesBackOff) {
  // Pseudo-random logits: n-gram drafts are (almost) never right; each rejection doubles the
  // pause, so few of the steps verify drafts.
  FakeModelSpec spec = spec_with(false, 256);
  spec.vocab = 4;  // small: the output repeats n-grams of its prompt by chance
  EngineConfig cfg = ngram(EngineConfig(), 4, 1, 1);
  cfg.max_model_len = 160;
  const EngineRun r = run_engine(spec, cfg, {request("a", {1, 2, 3, 1, 2, 3}, 120)});
  EXPECT_GT(r.stats.spec_num_drafts, 0);
  EXPECT_LT(r.stats.spec_num_drafts, r.stats.num_steps / 2);
}

// ---- The rejection rule's distribution -------------------------------------------------------

// Two positions over an 8-token vocabulary: the first token from logits l0, the second from
// logits that depend on the first. Returns the sampled token of one row.
int32_t sample_one(ReferenceSampler& s, const std::vector<float>& logits, uint64_t seed,
                   uint64_t counter) {
  SamplingBatch b;
  SamplingRow row;
  row.temperature = 1.0f;
  row.top_p = 0.95f;
  row.seed = seed;
  row.counter = counter;
  b.rows.push_back(row);
  std::vector<float> l = logits;
  SampledToken out;
  s.sample(l.data(), int32_t(l.size()), b, std::span<SampledToken>(&out, 1));
  return out.token_id;
}

std::vector<float> logits_after(int32_t first) {
  std::vector<float> l(8);
  for (int32_t v = 0; v < 8; ++v) l[size_t(v)] = float(((v + 3 * first) % 8)) * 0.35f - 1.0f;
  return l;
}

TEST(SpecDecode, RejectionRuleKeepsTheTargetDistribution) {
  // The target: t0 ~ p0, t1 ~ p1(t0). Speculative, drafts (d0, d1) = (5, 2): rows 0 and 1 are
  // sampled in one step (row 1 conditioned on d0); t0 is row 0's token (the draft is accepted
  // when they agree, else row 0's token is the correction); t1 is row 1's token when d0 was
  // accepted, else drawn in the next step from p1(t0). Both must follow p0(a) p1(b | a).
  const std::vector<float> l0 = {0.2f, -0.5f, 1.0f, 0.0f, 0.7f, 1.2f, -1.0f, 0.3f};
  ReferenceSampler s;
  // Exact probabilities of the sampler (temperature 1, top-p 0.95) from a fine histogram would
  // be circular; instead compare the two procedures' joint counts by a two-sample chi-square.
  constexpr int kDraws = 100000;
  std::map<std::pair<int32_t, int32_t>, std::array<int64_t, 2>> counts;
  const int32_t d0 = 5;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t seed_a = uint64_t(i) * 2 + 1, seed_b = uint64_t(i) * 2 + 2;  // independent
    // Target, one token at a time.
    const int32_t a0 = sample_one(s, l0, seed_a, 0);
    const int32_t a1 = sample_one(s, logits_after(a0), seed_a, 1);
    ++counts[{a0, a1}][0];
    // Speculative.
    const int32_t r0 = sample_one(s, l0, seed_b, 0);
    const int32_t r1 = sample_one(s, logits_after(d0), seed_b, 1);
    const int32_t b1 = r0 == d0 ? r1 : sample_one(s, logits_after(r0), seed_b, 1);
    ++counts[{r0, b1}][1];
  }
  double chi2 = 0;
  int cells = 0;
  for (const auto& [key, c] : counts) {
    const double tot = double(c[0] + c[1]);
    if (tot < 20) continue;  // pool nothing: cells this rare hardly move the statistic
    const double e = tot / 2;
    chi2 +=
        (double(c[0]) - e) * (double(c[0]) - e) / e + (double(c[1]) - e) * (double(c[1]) - e) / e;
    ++cells;
  }
  // Degrees of freedom cells - 1 (~60); the 99.9 % point of chi-square(60) is ~99.6.
  EXPECT_GT(cells, 30);
  EXPECT_LT(chi2, double(cells - 1) + 5.0 * std::sqrt(2.0 * double(cells - 1))) << cells;
}

}  // namespace
}  // namespace inferd
