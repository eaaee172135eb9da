// The reference sampler (backend/sampling.h) and its arithmetic (backend/sampling_math.h):
// distributions against an independent computation, every processing step, seeds and counters,
// the edit builder, and known answers for Philox and exp_neg.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "backend/sampling.h"
#include "inferd/sampling_params.h"
#include "sampling_test_util.h"

namespace inferd {
namespace {

const std::vector<float> kToy = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f, 0.0f, 1.5f};

// The row the engine builds for `sp` (edits aside).
SamplingRow row_of(const SamplingParams& sp, uint64_t seed = 0, uint64_t counter = 0) {
  SamplingRow r;
  r.temperature = sp.temperature;
  r.top_p = sp.top_p;
  r.top_k = sp.top_k;
  r.min_p = sp.min_p;
  r.repetition_penalty = sp.repetition_penalty;
  r.presence_penalty = sp.presence_penalty;
  r.frequency_penalty = sp.frequency_penalty;
  r.num_logprobs = sp.logprobs ? *sp.logprobs : -1;
  r.seed = seed;
  r.counter = counter;
  return r;
}

// Samples one row of `logits` processed by `sp` with the given history, as the engine does.
SampledToken sample_full(std::vector<float> logits, const SamplingParams& sp,
                         std::vector<int32_t> prompt = {}, std::vector<int32_t> output = {},
                         std::vector<int32_t> banned = {}, uint64_t seed = 1,
                         uint64_t counter = 0) {
  const int32_t V = int32_t(logits.size());
  LogitEditBuilder edits(V);
  SamplingBatch batch;
  SamplingRow row = row_of(sp, seed, counter);
  edits.append(row, banned, sp.logit_bias, prompt, output, batch.edits);
  batch.rows.push_back(row);
  ReferenceSampler sampler;
  SampledToken out;
  sampler.sample(logits.data(), V, batch, std::span(&out, 1));
  return out;
}

int32_t sample_once(std::vector<float> logits, const SamplingParams& sp,
                    std::vector<int32_t> prompt = {}, std::vector<int32_t> output = {},
                    std::vector<int32_t> banned = {}, SampledToken* full = nullptr) {
  SampledToken out =
      sample_full(std::move(logits), sp, std::move(prompt), std::move(output), std::move(banned));
  if (full) *full = out;
  return out.token_id;
}

// Tokens of one row sampled at counters [0, n) (one batch of n rows).
std::vector<int32_t> draws(const std::vector<float>& logits, const SamplingParams& sp,
                           uint64_t seed, int n, uint64_t first_counter = 0) {
  const int32_t V = int32_t(logits.size());
  SamplingBatch batch;
  std::vector<float> x(size_t(n) * size_t(V));
  for (int i = 0; i < n; ++i) {
    batch.rows.push_back(row_of(sp, seed, first_counter + uint64_t(i)));
    std::copy(logits.begin(), logits.end(), x.begin() + std::ptrdiff_t(i) * V);
  }
  std::vector<SampledToken> out(static_cast<size_t>(n));
  ReferenceSampler sampler;
  sampler.sample(x.data(), V, batch, out);
  std::vector<int32_t> ids;
  for (const auto& o : out) ids.push_back(o.token_id);
  return ids;
}

struct DistCase {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
};

class SamplerDistribution : public ::testing::TestWithParam<DistCase> {};

TEST_P(SamplerDistribution, MatchesExpected) {
  const DistCase c = GetParam();
  SamplingParams sp;
  sp.temperature = c.temperature;
  sp.top_k = c.top_k;
  sp.top_p = c.top_p;
  sp.min_p = c.min_p;
  const auto want = test::expected_dist(kToy, c.temperature, c.top_k, c.top_p, c.min_p);
  const int kDraws = 40000, kBatch = 100;
  const int32_t V = int32_t(kToy.size());
  std::vector<int64_t> counts(size_t(V), 0);
  // One sequence's draws at output positions 0..kDraws-1, kBatch rows per call.
  for (int d = 0; d < kDraws; d += kBatch) {
    for (int32_t t : draws(kToy, sp, 12345, kBatch, uint64_t(d))) ++counts[size_t(t)];
  }
  const test::ChiSquare cs = test::chi_square(counts, want);
  for (int32_t t : cs.drawn_but_filtered) ADD_FAILURE() << "token " << t << " must be filtered out";
  ASSERT_GE(cs.df, 1);
  EXPECT_LT(cs.chi2, test::kChi2Crit[cs.df]) << "df " << cs.df;
  // The test can tell distributions apart: the plain softmax differs from a filtered one.
  if (c.top_k > 0 || c.top_p < 1.0f || c.min_p > 0.0f) {
    const auto plain = test::expected_dist(kToy, c.temperature, 0, 1.0f, 0.0f);
    EXPECT_GT(test::chi_square(counts, plain).chi2, 100.0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Toy, SamplerDistribution,
    ::testing::Values(DistCase{1.0f, 0, 1.0f, 0.0f}, DistCase{0.7f, 0, 1.0f, 0.0f},
                      DistCase{1.5f, 0, 1.0f, 0.0f}, DistCase{1.0f, 3, 1.0f, 0.0f},
                      DistCase{1.0f, 0, 0.8f, 0.0f}, DistCase{0.8f, 0, 0.5f, 0.0f},
                      DistCase{1.0f, 0, 1.0f, 0.2f}, DistCase{1.2f, 5, 0.9f, 0.05f}));

SamplingParams greedy() {
  SamplingParams sp;
  sp.temperature = 0.0f;
  return sp;
}

TEST(Sampler, GreedyTakesArgmaxLowestIdOnTies) {
  EXPECT_EQ(sample_once({0.1f, 3.0f, 3.0f, -1.0f}, greedy()), 1);
  EXPECT_EQ(sample_once({5.0f, 3.0f}, greedy()), 0);
  // Whatever the key and the position.
  for (uint64_t c = 0; c < 20; ++c) {
    EXPECT_EQ(sample_full({0.1f, 3.0f, 3.0f, -1.0f}, greedy(), {}, {}, {}, c * 7919, c).token_id,
              1);
  }
}

TEST(Sampler, RepetitionPenaltyOverPromptAndOutput) {
  SamplingParams sp = greedy();
  sp.repetition_penalty = 1.2f;
  // Positive logit divided: 2.0 / 1.2 = 1.67 < 1.9.
  EXPECT_EQ(sample_once({2.0f, 1.9f, -3.0f}, greedy(), {0}), 0);
  EXPECT_EQ(sample_once({2.0f, 1.9f, -3.0f}, sp, {0}), 1);
  EXPECT_EQ(sample_once({2.0f, 1.9f, -3.0f}, sp, {}, {0}), 1);
  // Negative logit multiplied: -0.45 * 1.2 = -0.54 < -0.5.
  EXPECT_EQ(sample_once({-0.5f, -0.45f, -3.0f}, sp, {1}), 0);
  EXPECT_EQ(sample_once({-0.5f, -0.45f, -3.0f}, sp, {2}), 1);
  // Counted once however often the token occurs.
  sp.repetition_penalty = 1.05f;  // 2.0 / 1.05 = 1.905 > 1.9
  EXPECT_EQ(sample_once({2.0f, 1.9f, -3.0f}, sp, {0, 0, 0}, {0, 0}), 0);
}

TEST(Sampler, FrequencyAndPresencePenaltiesCountOutputOnly) {
  SamplingParams sp = greedy();
  sp.frequency_penalty = 0.2f;  // 3.0 - 3 * 0.2 = 2.4 < 2.5
  EXPECT_EQ(sample_once({3.0f, 2.5f}, sp, {}, {0, 0, 0}), 1);
  EXPECT_EQ(sample_once({3.0f, 2.5f}, sp, {0, 0, 0}, {}), 0);  // prompt does not count
  sp.frequency_penalty = 0.1f;                                 // 2.7 > 2.5
  EXPECT_EQ(sample_once({3.0f, 2.5f}, sp, {}, {0, 0, 0}), 0);
  SamplingParams pp = greedy();
  pp.presence_penalty = 0.4f;  // once: 2.6 > 2.5
  EXPECT_EQ(sample_once({3.0f, 2.5f}, pp, {}, {0, 0, 0}), 0);
  pp.presence_penalty = 0.6f;  // 2.4 < 2.5
  EXPECT_EQ(sample_once({3.0f, 2.5f}, pp, {}, {0}), 1);
  pp.presence_penalty = -0.6f;  // negative encourages
  EXPECT_EQ(sample_once({2.5f, 3.0f}, pp, {}, {0}), 0);
}

TEST(Sampler, LogitBiasAndBannedTokens) {
  SamplingParams sp = greedy();
  sp.logit_bias = {{0, 2.5f}};  // 1 + 2.5 > 3
  EXPECT_EQ(sample_once({1.0f, 2.0f, 3.0f}, sp), 0);
  sp.logit_bias = {{0, 1.5f}};  // 2.5 < 3
  EXPECT_EQ(sample_once({1.0f, 2.0f, 3.0f}, sp), 2);
  sp.logit_bias = {{0, 1.0f}, {0, 1.5f}};  // named twice: 1 + 2.5 > 3
  EXPECT_EQ(sample_once({1.0f, 2.0f, 3.0f}, sp), 0);
  EXPECT_EQ(sample_once({1.0f, 2.0f, 3.0f}, greedy(), {}, {}, {2}), 1);
  // Banned tokens are never drawn by random sampling either.
  SamplingParams r;
  r.temperature = 5.0f;
  for (uint64_t i = 0; i < 50; ++i) {
    EXPECT_NE(sample_full({1.0f, 1.0f, 1.0f}, r, {}, {}, {1}, i, i).token_id, 1);
  }
  // Everything banned: nothing to draw from, the lowest id (as greedy would) rather than a throw.
  EXPECT_EQ(sample_full({1.0f, 2.0f, 3.0f}, r, {}, {}, {0, 1, 2}).token_id, 0);
}

TEST(Sampler, TopKKeepsTiesAtTheKthValue) {
  SamplingParams sp;
  sp.top_k = 1;
  const std::vector<float> l = {1.0f, 2.0f, 2.0f, 0.0f};
  int hits[4] = {0, 0, 0, 0};
  for (int32_t t : draws(l, sp, 3, 400)) ++hits[t];
  EXPECT_EQ(hits[0] + hits[3], 0);
  EXPECT_GT(hits[1], 140);
  EXPECT_GT(hits[2], 140);
}

TEST(Sampler, TopPBreaksTiesByLowestId) {
  // Four equally likely tokens; top_p 0.5 keeps the first two by id.
  SamplingParams sp;
  sp.top_p = 0.5f;
  const std::vector<float> l = {0.5f, 0.5f, 0.5f, 0.5f};
  int hits[4] = {0, 0, 0, 0};
  for (int32_t t : draws(l, sp, 9, 400)) ++hits[t];
  EXPECT_EQ(hits[2] + hits[3], 0);
  EXPECT_GT(hits[0], 140);
  EXPECT_GT(hits[1], 140);
}

// The draw as sampling.h states it, from the shared helpers: the first token by id whose running
// mass exceeds floor(u * total).
int32_t spec_draw(const std::vector<float>& l, float temperature, float min_p, uint64_t seed,
                  uint64_t counter) {
  const float mx = *std::max_element(l.begin(), l.end());
  const float inv_t = 1.0f / temperature;
  std::vector<uint64_t> m(l.size());
  uint64_t total = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    const float p = sampling::prob_of(l[i], mx, inv_t);
    m[i] = p < min_p ? 0 : sampling::mass_of(p);
    total += m[i];
  }
  const uint64_t r = sampling::draw_threshold(sampling::uniform53(seed, counter), total);
  uint64_t acc = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    acc += m[i];
    if (m[i] > 0 && acc > r) return int32_t(i);
  }
  return -1;
}

TEST(Sampler, DrawFollowsTheStatedArithmetic) {
  std::vector<float> l(300);
  for (size_t i = 0; i < l.size(); ++i) l[i] = std::sin(float(i) * 0.37f) * 3.0f;
  for (float min_p : {0.0f, 0.1f}) {
    SamplingParams sp;
    sp.temperature = 0.8f;
    sp.min_p = min_p;
    const auto got = draws(l, sp, 77, 500);
    for (uint64_t c = 0; c < 500; ++c) {
      ASSERT_EQ(got[c], spec_draw(l, 0.8f, min_p, 77, c)) << "counter " << c << " min_p " << min_p;
    }
  }
}

TEST(Sampler, LogprobsAreRawLogSoftmaxWithTopAlternatives) {
  SamplingParams sp = greedy();
  sp.logprobs = 2;
  sp.logit_bias = {{0, 10.0f}};  // sampled token is 0, but logprobs use the raw logits
  SampledToken out;
  EXPECT_EQ(sample_once({1.0f, 2.0f, 3.0f}, sp, {}, {}, {}, &out), 0);
  ASSERT_TRUE(out.has_logprobs);
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_EQ(out.logprobs.token_id, 0);
  EXPECT_NEAR(out.logprobs.logprob, 1.0 - lse, 1e-6);
  EXPECT_EQ(out.logprobs.rank, 3);
  ASSERT_EQ(out.logprobs.top.size(), 2u);
  EXPECT_EQ(out.logprobs.top[0].token_id, 2);
  EXPECT_NEAR(out.logprobs.top[0].logprob, 3.0 - lse, 1e-6);
  EXPECT_EQ(out.logprobs.top[1].token_id, 1);
  EXPECT_NEAR(out.logprobs.top[1].logprob, 2.0 - lse, 1e-6);
  // Ties in the top list go to the lowest id; more than the vocabulary is capped.
  sp.logprobs = 10;
  sp.logit_bias.clear();
  sample_once({2.0f, 3.0f, 2.0f}, sp, {}, {}, {}, &out);
  ASSERT_EQ(out.logprobs.top.size(), 3u);
  EXPECT_EQ(out.logprobs.top[0].token_id, 1);
  EXPECT_EQ(out.logprobs.top[1].token_id, 0);
  EXPECT_EQ(out.logprobs.top[2].token_id, 2);
  EXPECT_EQ(out.logprobs.rank, 1);
  // logprobs = 0: the sampled token's logprob only.
  sp.logprobs = 0;
  sample_once({1.0f, 2.0f}, sp, {}, {}, {}, &out);
  EXPECT_TRUE(out.has_logprobs);
  EXPECT_TRUE(out.logprobs.top.empty());
  SamplingParams none = greedy();
  sample_once({1.0f, 2.0f}, none, {}, {}, {}, &out);
  EXPECT_FALSE(out.has_logprobs);
}

TEST(Sampler, GrammarBitmaskMasksBeforeEverythingElse) {
  // Tokens 1 and 3 allowed: greedy takes the best allowed one even against a bias, draws never
  // leave the set, and logprobs are over the masked row (vLLM applies the bitmask to the logits).
  const std::vector<float> logits = {5.0f, 1.0f, 9.0f, 2.0f, 0.5f};
  const int32_t V = int32_t(logits.size());
  for (float temperature : {0.0f, 1.0f, 3.0f}) {
    for (uint64_t c = 0; c < 200; ++c) {
      SamplingParams sp = greedy();
      sp.temperature = temperature;
      sp.logprobs = 5;
      sp.logit_bias = {{2, 10.0f}, {4, 10.0f}};
      LogitEditBuilder edits(V);
      SamplingBatch batch;
      SamplingRow row = row_of(sp, 7, c);
      edits.append(row, {}, sp.logit_bias, {}, {}, batch.edits);
      row.mask_row = 0;
      batch.rows.push_back(row);
      batch.mask_words = 1;
      batch.masks = {(1u << 1) | (1u << 3)};
      std::vector<float> l = logits;
      SampledToken out;
      ReferenceSampler().sample(l.data(), V, batch, std::span(&out, 1));
      ASSERT_TRUE(out.token_id == 1 || out.token_id == 3) << out.token_id;
      if (temperature == 0.0f) {
        ASSERT_EQ(out.token_id, 3);
      }
      const double lse = std::log(std::exp(1.0) + std::exp(2.0));
      ASSERT_EQ(out.logprobs.top.size(), 2u);  // masked tokens are no alternatives
      EXPECT_EQ(out.logprobs.top[0].token_id, 3);
      EXPECT_NEAR(out.logprobs.top[0].logprob, 2.0 - lse, 1e-6);
      EXPECT_EQ(out.logprobs.top[1].token_id, 1);
      EXPECT_NEAR(out.logprobs.top[1].logprob, 1.0 - lse, 1e-6);
    }
  }
}

TEST(Sampler, SameSeedSameDraws) {
  SamplingParams sp;
  sp.temperature = 1.0f;
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(i % 7) * 0.3f;
  EXPECT_EQ(draws(l, sp, 7, 30), draws(l, sp, 7, 30));
  EXPECT_NE(draws(l, sp, 7, 30), draws(l, sp, 8, 30));
}

TEST(Sampler, SameSeedAndCounterSameTokenInAnyBatch) {
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_p = 0.9f;
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(i % 7) * 0.3f;
  // Alone, and at row 3 of a batch whose other rows have other keys and counters.
  const int32_t alone = sample_full(l, sp, {}, {}, {}, 11, 5).token_id;
  const int32_t V = int32_t(l.size());
  SamplingBatch batch;
  std::vector<float> x;
  for (int i = 0; i < 6; ++i) {
    batch.rows.push_back(i == 3 ? row_of(sp, 11, 5) : row_of(sp, uint64_t(100 + i), uint64_t(i)));
    x.insert(x.end(), l.begin(), l.end());
  }
  std::vector<SampledToken> out(6);
  ReferenceSampler sampler;
  sampler.sample(x.data(), V, batch, out);
  EXPECT_EQ(out[3].token_id, alone);
  // The counter moves the draw: over many positions a flat distribution gives many tokens.
  std::vector<float> flat(size_t(V), 0.0f);
  const auto ids = draws(flat, sp, 11, 400);
  EXPECT_GT(std::set<int32_t>(ids.begin(), ids.end()).size(), 35u);
  for (uint64_t c = 0; c < 400; c += 37) {
    EXPECT_EQ(sample_full(flat, sp, {}, {}, {}, 11, c).token_id, ids[c]);
  }
}

TEST(Sampler, TopPOnLargeVocabularyKeepsSmallestNucleus) {
  // 4096 tokens: two strong ones (e^10 each) hold 91.5% of the mass; top_p 0.85 keeps exactly those
  // two.
  const int32_t V = 4096;
  std::vector<float> l(size_t(V), 0.0f);
  l[100] = 10.0f;
  l[2000] = 10.0f;
  SamplingParams sp;
  sp.top_p = 0.85f;
  int hits[2] = {0, 0};
  for (int32_t t : draws(l, sp, 5, 400)) {
    ASSERT_TRUE(t == 100 || t == 2000) << t;
    ++hits[t == 100 ? 0 : 1];
  }
  EXPECT_GT(hits[0], 140);
  EXPECT_GT(hits[1], 140);
}

TEST(LogitEditBuilder, DistinctTokensSummedBiasesAndCounts) {
  LogitEditBuilder b(10);
  std::vector<LogitEdit> edits;
  SamplingRow row;
  row.repetition_penalty = 1.1f;
  row.frequency_penalty = 0.5f;
  const std::vector<int32_t> banned = {2};
  // 6: (1e8 - 1e8) + 1 = 1; 9: (1e8 + 1) - 1e8 = 0 in float: no effect, no entry. 4: 1 - 1 = 0.
  const std::vector<std::pair<int32_t, float>> bias = {{5, 1.0f},  {2, 0.5f}, {5, 0.25f}, {6, 1e8f},
                                                       {6, -1e8f}, {6, 1.0f}, {9, 1e8f},  {9, 1.0f},
                                                       {9, -1e8f}, {4, 1.0f}, {4, -1.0f}};
  const std::vector<int32_t> prompt = {1, 5, 1};
  const std::vector<int32_t> output = {7, 7, 1};
  b.append(row, banned, bias, prompt, output, edits);
  EXPECT_EQ(row.edit_begin, 0);
  ASSERT_EQ(row.edit_count, int32_t(edits.size()));
  std::set<int32_t> tokens;
  for (const LogitEdit& e : edits) EXPECT_TRUE(tokens.insert(e.token).second) << e.token;
  EXPECT_EQ(tokens, (std::set<int32_t>{1, 2, 5, 6, 7}));
  auto get = [&](int32_t t) {
    return *std::find_if(edits.begin(), edits.end(),
                         [&](const LogitEdit& e) { return e.token == t; });
  };
  EXPECT_EQ(get(2).flags, sampling::kEditBanned);
  EXPECT_EQ(get(2).bias, 0.5f);
  EXPECT_EQ(get(5).bias, 1.25f);
  EXPECT_EQ(get(5).flags, sampling::kEditSeen);
  EXPECT_EQ(get(5).count, 0);  // prompt tokens are not counted
  EXPECT_EQ(get(6).bias, 1.0f);
  EXPECT_EQ(get(1).flags, sampling::kEditSeen);
  EXPECT_EQ(get(1).count, 1);
  EXPECT_EQ(get(7).flags, sampling::kEditSeen);
  EXPECT_EQ(get(7).count, 2);
  EXPECT_EQ(get(7).bias, 0.0f);

  // A second row: appended after the first, its own entries for tokens the first row had.
  SamplingRow plain;  // no penalties: prompt and output are not read
  b.append(plain, {}, std::vector<std::pair<int32_t, float>>{{7, -2.0f}}, prompt, output, edits);
  EXPECT_EQ(plain.edit_begin, row.edit_count);
  ASSERT_EQ(plain.edit_count, 1);
  const LogitEdit& e = edits[size_t(plain.edit_begin)];
  EXPECT_EQ(e.token, 7);
  EXPECT_EQ(e.bias, -2.0f);
  EXPECT_EQ(e.flags, 0u);
  EXPECT_EQ(e.count, 0);

  // Presence alone counts too; a row with nothing to edit adds nothing.
  SamplingRow presence;
  presence.presence_penalty = 0.3f;
  b.append(presence, {}, {}, prompt, output, edits);
  ASSERT_EQ(presence.edit_count, 2);
  SamplingRow none;
  const size_t before = edits.size();
  b.append(none, {}, {}, prompt, output, edits);
  EXPECT_EQ(none.edit_count, 0);
  EXPECT_EQ(none.edit_begin, int32_t(before));
  EXPECT_EQ(edits.size(), before);
}

TEST(SamplingMath, ExpNegMatchesStdExp) {
  double worst = 0;
  for (int i = 0; i <= 1000000; ++i) {
    const float x = -80.0f * float(i) / 1000000.0f;
    if (!(x > -80.0f)) continue;
    const double want = std::exp(double(x));
    worst = std::max(worst, std::abs(double(sampling::exp_neg(x)) - want) / want);
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_EQ(sampling::exp_neg(0.0f), 1.0f);
  EXPECT_EQ(sampling::exp_neg(-80.0f), 0.0f);
  EXPECT_EQ(sampling::exp_neg(-1000.0f), 0.0f);
  EXPECT_EQ(sampling::exp_neg(-INFINITY), 0.0f);
  EXPECT_EQ(sampling::exp_neg(NAN), 0.0f);
}

TEST(SamplingMath, Uniform53IsInUnitIntervalWithMeanOneHalf) {
  const int n = 200000;
  double sum = 0, sum2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = sampling::uniform53(0x1234abcd5678ull, uint64_t(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum2 += u * u;
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 0.5, 0.004);                         // ~6 standard errors
  EXPECT_NEAR(sum2 / n - mean * mean, 1.0 / 12, 0.002);  // variance of U(0, 1)
  // Keys, counters and streams all move the value.
  EXPECT_NE(sampling::uniform53(1, 0), sampling::uniform53(2, 0));
  EXPECT_NE(sampling::uniform53(1, 0), sampling::uniform53(1, 1));
  EXPECT_NE(sampling::uniform53(1, 0), sampling::uniform53(1, uint64_t(1) << 32));
  EXPECT_NE(sampling::uniform53(1, 0, 0), sampling::uniform53(1, 0, 1));
}

TEST(SamplingMath, PhiloxKnownAnswers) {
  // Random123's kat_vectors for philox4x32 with 10 rounds: counter[4], key[2] -> output[4].
  struct Kat {
    uint32_t c[4], k[2], want[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const sampling::Philox4 r =
        sampling::philox4x32_10(k.c[0], k.c[1], k.c[2], k.c[3], k.k[0], k.k[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r.v[i], k.want[i]) << std::hex << "word " << i;
  }
}

}  // namespace
}  // namespace inferd
