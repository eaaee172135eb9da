#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace inferd {
namespace {

const std::vector<float> kToy = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f, 0.0f, 1.5f};

// The distribution the documented semantics give, written independently of the sampler.
std::vector<double> expected_dist(const std::vector<float>& l, float t, int32_t top_k, float top_p,
                                  float min_p) {
  const size_t V = l.size();
  std::vector<double> p(V);
  double mx = *std::max_element(l.begin(), l.end()), s = 0;
  for (size_t i = 0; i < V; ++i) s += p[i] = std::exp((l[i] - mx) / t);
  for (auto& x : p) x /= s;
  const double pmax = *std::max_element(p.begin(), p.end());
  std::vector<bool> keep(V, true);
  for (size_t i = 0; i < V; ++i) keep[i] = p[i] >= min_p * pmax;
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  if (top_k > 0) {
    int32_t seen = 0;
    for (size_t i : order) {
      if (!keep[i]) continue;
      if (++seen > top_k) keep[i] = false;
    }
  }
  if (top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < V; ++i) mass += keep[i] ? p[i] : 0;
    double acc = 0;
    bool reached = false;
    for (size_t i : order) {
      if (!keep[i]) continue;
      if (reached) {
        keep[i] = false;
        continue;
      }
      acc += p[i] / mass;
      if (acc >= top_p) reached = true;
    }
  }
  double tot = 0;
  for (size_t i = 0; i < V; ++i) tot += keep[i] ? p[i] : 0;
  std::vector<double> out(V);
  for (size_t i = 0; i < V; ++i) out[i] = keep[i] ? p[i] / tot : 0;
  return out;
}

// Chi-square critical values at p = 0.001 for 1..7 degrees of freedom.
const double kChi2Crit[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};

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
  const auto want = expected_dist(kToy, c.temperature, c.top_k, c.top_p, c.min_p);
  CpuSampler sampler;
  Rng rng(12345);
  const int kDraws = 40000, kBatch = 100;
  const int32_t V = int32_t(kToy.size());
  std::vector<int> counts(size_t(V), 0);
  std::vector<float> logits(size_t(kBatch * V));
  std::vector<SamplerRow> rows(kBatch);
  std::vector<SampledToken> out(kBatch);
  for (auto& r : rows) {
    r.params = &sp;
    r.rng = &rng;
  }
  for (int d = 0; d < kDraws; d += kBatch) {
    for (int b = 0; b < kBatch; ++b) std::copy(kToy.begin(), kToy.end(), logits.begin() + b * V);
    sampler.sample(logits.data(), V, rows, out);
    for (const auto& o : out) ++counts[size_t(o.token_id)];
  }
  double chi2 = 0;
  int df = -1;
  for (int32_t i = 0; i < V; ++i) {
    if (want[size_t(i)] == 0) {
      EXPECT_EQ(counts[size_t(i)], 0) << "token " << i << " must be filtered out";
      continue;
    }
    const double e = want[size_t(i)] * kDraws;
    chi2 += (counts[size_t(i)] - e) * (counts[size_t(i)] - e) / e;
    ++df;
  }
  ASSERT_GE(df, 1);
  EXPECT_LT(chi2, kChi2Crit[df]) << "df " << df;
  // The test can tell distributions apart: the plain softmax differs from a filtered one.
  if (c.top_k > 0 || c.top_p < 1.0f || c.min_p > 0.0f) {
    const auto plain = expected_dist(kToy, c.temperature, 0, 1.0f, 0.0f);
    double chi2_plain = 0;
    for (int32_t i = 0; i < V; ++i) {
      const double e = plain[size_t(i)] * kDraws;
      chi2_plain += (counts[size_t(i)] - e) * (counts[size_t(i)] - e) / e;
    }
    EXPECT_GT(chi2_plain, 100.0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Toy, SamplerDistribution,
    ::testing::Values(DistCase{1.0f, 0, 1.0f, 0.0f}, DistCase{0.7f, 0, 1.0f, 0.0f},
                      DistCase{1.5f, 0, 1.0f, 0.0f}, DistCase{1.0f, 3, 1.0f, 0.0f},
                      DistCase{1.0f, 0, 0.8f, 0.0f}, DistCase{0.8f, 0, 0.5f, 0.0f},
                      DistCase{1.0f, 0, 1.0f, 0.2f}, DistCase{1.2f, 5, 0.9f, 0.05f}));

// Greedy argmax of `logits` after processing by `sp` with the given history.
int32_t sample_once(std::vector<float> logits, const SamplingParams& sp,
                    std::vector<int32_t> prompt = {}, std::vector<int32_t> output = {},
                    std::vector<int32_t> banned = {}, SampledToken* full = nullptr) {
  CpuSampler sampler;
  Rng rng(1);
  SamplerRow row;
  row.params = &sp;
  row.rng = &rng;
  row.prompt = prompt;
  row.output = output;
  row.banned = banned;
  SampledToken out;
  sampler.sample(logits.data(), int32_t(logits.size()), std::span(&row, 1), std::span(&out, 1));
  if (full) *full = out;
  return out.token_id;
}

SamplingParams greedy() {
  SamplingParams sp;
  sp.temperature = 0.0f;
  return sp;
}

TEST(Sampler, GreedyTakesArgmaxLowestIdOnTies) {
  EXPECT_EQ(sample_once({0.1f, 3.0f, 3.0f, -1.0f}, greedy()), 1);
  EXPECT_EQ(sample_once({5.0f, 3.0f}, greedy()), 0);
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
  EXPECT_EQ(sample_once({1.0f, 2.0f, 3.0f}, greedy(), {}, {}, {2}), 1);
  // Banned tokens are never drawn by random sampling either.
  SamplingParams r;
  r.temperature = 5.0f;
  for (int i = 0; i < 50; ++i) {
    CpuSampler s;
    Rng rng(static_cast<uint64_t>(i));
    std::vector<float> l = {1.0f, 1.0f, 1.0f};
    const std::vector<int32_t> banned = {1};
    SamplerRow row{&r, &rng, {}, {}, banned};
    SampledToken out;
    s.sample(l.data(), 3, std::span(&row, 1), std::span(&out, 1));
    EXPECT_NE(out.token_id, 1);
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
  EXPECT_NEAR(out.logprobs.logprob, 1.0 - lse, 1e-5);
  EXPECT_EQ(out.logprobs.rank, 3);
  ASSERT_EQ(out.logprobs.top.size(), 2u);
  EXPECT_EQ(out.logprobs.top[0].token_id, 2);
  EXPECT_NEAR(out.logprobs.top[0].logprob, 3.0 - lse, 1e-5);
  EXPECT_EQ(out.logprobs.top[1].token_id, 1);
  EXPECT_NEAR(out.logprobs.top[1].logprob, 2.0 - lse, 1e-5);
  SamplingParams none = greedy();
  sample_once({1.0f, 2.0f}, none, {}, {}, {}, &out);
  EXPECT_FALSE(out.has_logprobs);
}

TEST(Sampler, SameSeedSameDrawsGreedyDrawsNothing) {
  SamplingParams sp;
  sp.temperature = 1.0f;
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(i % 7) * 0.3f;
  auto run = [&](uint64_t seed) {
    CpuSampler s;
    Rng rng(seed);
    std::vector<int32_t> ids;
    for (int i = 0; i < 30; ++i) {
      std::vector<float> x = l;
      SamplerRow row{&sp, &rng, {}, {}, {}};
      SampledToken out;
      s.sample(x.data(), 50, std::span(&row, 1), std::span(&out, 1));
      ids.push_back(out.token_id);
    }
    return ids;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
  Rng a(3), b(3);
  SamplingParams g = greedy();
  CpuSampler s;
  std::vector<float> x = l;
  SamplerRow row{&g, &a, {}, {}, {}};
  SampledToken out;
  s.sample(x.data(), 50, std::span(&row, 1), std::span(&out, 1));
  EXPECT_EQ(a.next_u64(), b.next_u64());
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
  CpuSampler s;
  Rng rng(5);
  int hits[2] = {0, 0};
  for (int i = 0; i < 400; ++i) {
    std::vector<float> x = l;
    SamplerRow row{&sp, &rng, {}, {}, {}};
    SampledToken out;
    s.sample(x.data(), V, std::span(&row, 1), std::span(&out, 1));
    ASSERT_TRUE(out.token_id == 100 || out.token_id == 2000) << out.token_id;
    ++hits[out.token_id == 100 ? 0 : 1];
  }
  EXPECT_GT(hits[0], 140);
  EXPECT_GT(hits[1], 140);
}

}  // namespace
}  // namespace inferd
