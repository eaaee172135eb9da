// The general rejection rule of speculative decoding (issue 26) in the reference sampler: a row
// that verifies a draft x drawn from a draft distribution q (SamplingRow::draft_row) gives x with
// probability min(1, p(x) / q(x)), else a draw from norm(max(0, p - q)); the tokens that come out
// follow the target distribution p exactly. Two-sample chi-square over 10^5 draws, target vs
// speculative, on small vocabularies with draft distributions unlike the target's (mass on tokens
// top-k / top-p drop, too little mass on likely ones).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>

#include "backend/sampling.h"

namespace inferd {
namespace {

struct RowParams {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
};

// One row sampled from `logits`; with `q` (normalised, same size) the row verifies `draft`.
int32_t sample_row(ReferenceSampler& s, const std::vector<float>& logits, const RowParams& rp,
                   uint64_t seed, uint64_t counter, const std::vector<float>* q = nullptr,
                   int32_t draft = -1) {
  SamplingBatch b;
  SamplingRow row;
  row.temperature = rp.temperature;
  row.top_p = rp.top_p;
  row.top_k = rp.top_k;
  row.seed = seed;
  row.counter = counter;
  if (q) {
    row.draft_token = draft;
    row.draft_row = 0;
    b.draft_probs = *q;
  }
  b.rows.push_back(row);
  std::vector<float> l = logits;
  SampledToken out;
  s.sample(l.data(), int32_t(l.size()), b, std::span<SampledToken>(&out, 1));
  return out.token_id;
}

// A draw from q with the draft's own Philox stream (as the draft proposer draws).
int32_t draw_draft(const std::vector<float>& q, uint64_t seed, uint64_t counter) {
  const double u = sampling::uniform53(seed, counter, sampling::kStreamDraft);
  double acc = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    acc += double(q[i]);
    if (u < acc) return int32_t(i);
  }
  return int32_t(q.size()) - 1;
}

std::vector<float> normalised(std::vector<float> w) {
  double s = 0;
  for (float x : w) s += double(x);
  for (float& x : w) x = float(double(x) / s);
  return w;
}

// Two-sample chi-square over cells with at least 20 draws; checks it against cells - 1 degrees of
// freedom (mean + 5 standard deviations: a false alarm about once in 10^5 runs).
template <typename Key>
void expect_same_distribution(const std::map<Key, std::array<int64_t, 2>>& counts, int min_cells) {
  double chi2 = 0;
  int cells = 0;
  for (const auto& [key, c] : counts) {
    const double tot = double(c[0] + c[1]);
    if (tot < 20) continue;
    const double e = tot / 2;
    chi2 +=
        (double(c[0]) - e) * (double(c[0]) - e) / e + (double(c[1]) - e) * (double(c[1]) - e) / e;
    ++cells;
  }
  EXPECT_GE(cells, min_cells);
  EXPECT_LT(chi2, double(cells - 1) + 5.0 * std::sqrt(2.0 * double(cells - 1))) << cells;
}

TEST(SpecRejection, SampledDraftKeepsTheTargetDistributionOfOneToken) {
  // 16 tokens, temperature 0.8, top_k 6: q puts a third of its mass on tokens p drops and little
  // on p's most likely token.
  std::vector<float> l(16);
  for (int i = 0; i < 16; ++i) l[size_t(i)] = float((i * 7) % 16) * 0.2f - 1.5f;
  const RowParams rp{0.8f, 1.0f, 6};
  std::vector<float> w(16);
  for (int i = 0; i < 16; ++i) w[size_t(i)] = 1.0f + float(i % 5);
  w[size_t(std::max_element(l.begin(), l.end()) - l.begin())] = 0.2f;
  const std::vector<float> q = normalised(w);
  ReferenceSampler s;
  std::map<int32_t, std::array<int64_t, 2>> counts;
  int64_t accepted = 0;
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t seed_a = uint64_t(i) * 2 + 1, seed_b = uint64_t(i) * 2 + 2;
    ++counts[sample_row(s, l, rp, seed_a, 0)][0];
    const int32_t x = draw_draft(q, seed_b, 0);
    const int32_t t = sample_row(s, l, rp, seed_b, 0, &q, x);
    accepted += t == x ? 1 : 0;
    ++counts[t][1];
  }
  expect_same_distribution(counts, 6);
  // The acceptance rate is sum_x min(p(x), q(x)), the most any rule keeping p can reach (sampling
  // y ~ p and accepting when y == x, right for one-hot drafts, would reach only sum_x p(x) q(x)).
  std::vector<double> p(16);
  const double mx = *std::max_element(l.begin(), l.end());
  std::vector<float> sorted = l;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  double z = 0;
  for (int i = 0; i < 16; ++i) {
    if (l[size_t(i)] < sorted[5]) continue;  // top_k 6
    p[size_t(i)] = std::exp((double(l[size_t(i)]) - mx) / 0.8);
    z += p[size_t(i)];
  }
  double best = 0, naive = 0;
  for (int i = 0; i < 16; ++i) {
    best += std::min(p[size_t(i)] / z, double(q[size_t(i)]));
    naive += p[size_t(i)] / z * double(q[size_t(i)]);
  }
  EXPECT_NEAR(double(accepted) / kDraws, best, 0.01) << "naive rule's rate " << naive;
  EXPECT_GT(best - naive, 0.05);  // the two rules are told apart
}

std::vector<float> logits_after(int32_t first) {
  std::vector<float> l(8);
  for (int32_t v = 0; v < 8; ++v) l[size_t(v)] = float(((v + 3 * first) % 8)) * 0.35f - 1.0f;
  return l;
}

std::vector<float> draft_after(int32_t first) {
  std::vector<float> w(8);
  for (int32_t v = 0; v < 8; ++v) w[size_t(v)] = 0.3f + float((v * 5 + first) % 8) * 0.25f;
  return normalised(w);
}

TEST(SpecRejection, SampledDraftsKeepTheJointDistributionOfTwoTokens) {
  // The engine's procedure for k = 2: drafts x0 ~ q0, x1 ~ q1(x0); row 0 verifies x0, row 1
  // (conditioned on x0) verifies x1; t1 is row 1's token when x0 was accepted, else drawn in the
  // next step from p1(t0). Temperature 1, top-p 0.9.
  const std::vector<float> l0 = {0.2f, -0.5f, 1.0f, 0.0f, 0.7f, 1.2f, -1.0f, 0.3f};
  const std::vector<float> q0 = normalised({1, 2, 1, 3, 1, 0.5f, 2, 1});
  const RowParams rp{1.0f, 0.9f, 0};
  ReferenceSampler s;
  std::map<std::pair<int32_t, int32_t>, std::array<int64_t, 2>> counts;
  for (int i = 0; i < 100000; ++i) {
    const uint64_t seed_a = uint64_t(i) * 2 + 1, seed_b = uint64_t(i) * 2 + 2;
    const int32_t a0 = sample_row(s, l0, rp, seed_a, 0);
    ++counts[{a0, sample_row(s, logits_after(a0), rp, seed_a, 1)}][0];
    const int32_t x0 = draw_draft(q0, seed_b, 0);
    const std::vector<float> q1 = draft_after(x0);
    const int32_t x1 = draw_draft(q1, seed_b, 1);
    const int32_t t0 = sample_row(s, l0, rp, seed_b, 0, &q0, x0);
    const int32_t t1 = t0 == x0 ? sample_row(s, logits_after(x0), rp, seed_b, 1, &q1, x1)
                                : sample_row(s, logits_after(t0), rp, seed_b, 1);
    ++counts[{t0, t1}][1];
  }
  expect_same_distribution(counts, 30);
}

TEST(SpecRejection, GreedyRowsIgnoreTheDraftDistribution) {
  const std::vector<float> l = {0.1f, 0.9f, 0.3f, -2.0f};
  const std::vector<float> q = normalised({0.7f, 0.1f, 0.1f, 0.1f});
  ReferenceSampler s;
  for (uint64_t seed = 0; seed < 50; ++seed)
    EXPECT_EQ(sample_row(s, l, RowParams{0.0f, 1.0f, 0}, seed, 0, &q, 0), 1);
}

}  // namespace
}  // namespace inferd
