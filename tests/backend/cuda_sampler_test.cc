// The CUDA sampler against the reference sampler (backend/cpu/sampler.cc) on the same fresh random
// logits: identical tokens for greedy and seeded rows of every parameter combination (temperature,
// top-k, top-p, min-p, penalties, logit_bias, banned ids), identical logprob ranks and top ids with
// logprobs within float rounding; and the drawn distributions of top-k / top-p / min-p rows against
// the exact ones (chi-square over 10^5 draws); rows verifying sampled drafts (the rejection rule of
// speculative decoding) with the reference's accept / reject decisions and tokens, and their
// distribution against the target's (chi-square). Skips itself where there is no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/sampling.h"
#include "cuda_test_util.h"
#include "sampling_test_util.h"

namespace inferd {
namespace {

using sampling::SamplingRow;

class CudaSampler : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_GPU();
    gpu_ = make_cuda_backend(0);
    StepCapacity c;
    c.max_tokens = kMaxRows;
    c.max_blocks_per_seq = 1;
    c.max_top_logprobs = 20;
    c.max_edits = 1 << 16;
    c.max_draft_floats = int64_t(1) << 23;  // sampled drafts' distributions
    gpu_->reserve(c);
  }

  // Samples `logits` ([rows, V]) on the GPU and with the reference; both outputs returned. pad_to
  // pads the batch like a CUDA-graph decode step.
  void run(const std::vector<float>& logits, int32_t V, const SamplingBatch& sb,
           std::vector<SampledToken>& got, std::vector<SampledToken>& want, int32_t pad_to = 0) {
    const int32_t R = int32_t(sb.rows.size());
    std::vector<test::SeqSpec> specs(size_t(R), test::SeqSpec{0, 1});
    const ForwardBatch fb = test::make_batch(specs, 16, R, rng_, 10);
    const DeviceBatch& b = gpu_->prepare_batch(fb, 16, &sb, pad_to);
    const int32_t rows = std::max(R, pad_to);
    Tensor host = Tensor::empty_host(DType::kF32, {rows, V});
    std::fill(host.data_as<float>(), host.data_as<float>() + host.numel(), 0.0f);
    std::copy(logits.begin(), logits.end(), host.data_as<float>());
    Tensor dev = cuda_upload(*gpu_, host, DType::kF32);
    gpu_->sample(dev, b, 0);
    got.assign(size_t(R), SampledToken{});
    gpu_->finish_samples(b, sb, got);
    std::vector<float> copy = logits;
    want.assign(size_t(R), SampledToken{});
    ReferenceSampler().sample(copy.data(), V, sb, want);
  }

  std::vector<float> random_logits(int32_t rows, int32_t V, float scale) {
    std::vector<float> l(size_t(rows) * size_t(V));
    for (auto& x : l) x = float(rng_.normal()) * scale;
    return l;
  }

  static constexpr int32_t kMaxRows = 1024;
  const uint64_t seed_ = std::random_device{}();
  Rng rng_{seed_};
  std::unique_ptr<Backend> gpu_;
};

#define TRACE_SEED() SCOPED_TRACE(::testing::Message() << "seed " << seed_)

void expect_same(const std::vector<SampledToken>& got, const std::vector<SampledToken>& want,
                 const SamplingBatch& sb) {
  ASSERT_EQ(got.size(), want.size());
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const SamplingRow& r = sb.rows[i];
    if (got[i].token_id != want[i].token_id && ++mismatches <= 10) {
      ADD_FAILURE() << "row " << i << ": GPU token " << got[i].token_id << ", reference "
                    << want[i].token_id << " (T " << r.temperature << " top_k " << r.top_k
                    << " top_p " << r.top_p << " min_p " << r.min_p << " edits " << r.edit_count
                    << ")";
    }
    ASSERT_EQ(got[i].has_logprobs, want[i].has_logprobs) << "row " << i;
    if (!want[i].has_logprobs) continue;
    const SampleLogprobs &g = got[i].logprobs, &w = want[i].logprobs;
    EXPECT_EQ(g.rank, w.rank) << "row " << i;
    EXPECT_NEAR(g.logprob, w.logprob, 1e-3 + 1e-5 * std::fabs(w.logprob)) << "row " << i;
    ASSERT_EQ(g.top.size(), w.top.size()) << "row " << i;
    for (size_t k = 0; k < w.top.size(); ++k) {
      EXPECT_EQ(g.top[k].token_id, w.top[k].token_id) << "row " << i << " top " << k;
      EXPECT_NEAR(g.top[k].logprob, w.top[k].logprob, 1e-3 + 1e-5 * std::fabs(w.top[k].logprob))
          << "row " << i << " top " << k;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Rows of every kind, with histories for the penalties.
SamplingBatch mixed_rows(int32_t R, int32_t V, Rng& rng) {
  SamplingBatch sb;
  LogitEditBuilder eb(V);
  std::vector<int32_t> prompt, output, banned;
  std::vector<std::pair<int32_t, float>> bias;
  for (int32_t i = 0; i < R; ++i) {
    SamplingRow r;
    const int kind = i % 12;
    r.temperature = kind == 0 ? 0.0f : float(0.3 + 1.5 * rng.uniform());
    if (kind == 2 || kind == 7) r.top_k = 1 + int32_t(rng.next_u64() % 100);
    if (kind == 3 || kind == 7 || kind == 9) r.top_p = float(0.05 + 0.9 * rng.uniform());
    if (kind == 4 || kind == 9) r.min_p = float(0.3 * rng.uniform());
    if (kind == 5) r.top_k = 1;
    if (kind == 10) r.top_p = 1e-6f;  // keeps exactly one token
    r.seed = rng.next_u64();
    r.counter = rng.next_u64() % 5000;
    prompt.clear();
    output.clear();
    banned.clear();
    bias.clear();
    if (kind == 6 || kind == 8 || kind == 11) {
      r.repetition_penalty = float(0.8 + 0.6 * rng.uniform());
      r.frequency_penalty = float(rng.uniform() * 2 - 1);
      r.presence_penalty = float(rng.uniform() * 2 - 1);
      for (int k = 0; k < 40; ++k) prompt.push_back(int32_t(rng.next_u64() % uint64_t(V)));
      for (int k = 0; k < 60; ++k) output.push_back(int32_t(rng.next_u64() % 50));
    }
    if (kind == 8 || kind == 1) {
      for (int k = 0; k < 5; ++k) bias.push_back({int32_t(rng.next_u64() % uint64_t(V)), 5.0f});
      banned.push_back(int32_t(rng.next_u64() % uint64_t(V)));
    }
    if (i % 3 == 0) r.num_logprobs = int32_t(rng.next_u64() % 21);
    eb.append(r, banned, bias, prompt, output, sb.edits);
    sb.rows.push_back(r);
  }
  return sb;
}

TEST_F(CudaSampler, SameTokensAsReferenceOnRandomLogits) {
  TRACE_SEED();
  for (int32_t V : {1000, 128256, 151936}) {
    SCOPED_TRACE(::testing::Message() << "vocab " << V);
    const int32_t R = V > 100000 ? 96 : 600;
    const SamplingBatch sb = mixed_rows(R, V, rng_);
    for (float scale : {1.0f, 4.0f}) {
      std::vector<SampledToken> got, want;
      run(random_logits(R, V, scale), V, sb, got, want);
      expect_same(got, want, sb);
    }
  }
}

// Scoring rows (prompt logprobs: SamplingRow::score_token) among sampling rows: the given token
// comes back with the reference's logprob, rank and alternatives, whatever the other fields say.
TEST_F(CudaSampler, ScoringRowsGiveTheirTokenAndLogprobs) {
  TRACE_SEED();
  for (int32_t V : {1000, 128256}) {
    SCOPED_TRACE(::testing::Message() << "vocab " << V);
    const int32_t R = 300;
    SamplingBatch sb = mixed_rows(R, V, rng_);
    for (int32_t i = 0; i < R; i += 2) {
      SamplingRow r;  // as the engine builds them: no edits, no mask
      r.score_token = int32_t(rng_.next_u64() % uint64_t(V));
      r.num_logprobs = int32_t(rng_.next_u64() % 21);
      sb.rows[size_t(i)] = r;
    }
    std::vector<SampledToken> got, want;
    run(random_logits(R, V, 3.0f), V, sb, got, want);
    expect_same(got, want, sb);
    for (int32_t i = 0; i < R; i += 2) {
      EXPECT_EQ(got[size_t(i)].token_id, sb.rows[size_t(i)].score_token);
      EXPECT_EQ(got[size_t(i)].logprobs.token_id, sb.rows[size_t(i)].score_token);
    }
  }
}

TEST_F(CudaSampler, ManySeededDrawsIdenticalToReference) {
  TRACE_SEED();
  const int32_t V = 32000, R = 1000;
  SamplingBatch sb;
  for (int32_t i = 0; i < R; ++i) {
    SamplingRow r;
    r.temperature = 1.0f;
    r.seed = rng_.next_u64();
    r.counter = uint64_t(i);
    sb.rows.push_back(r);
  }
  // Flat-ish logits so that the draws spread over many tokens.
  std::vector<SampledToken> got, want;
  run(random_logits(R, V, 0.5f), V, sb, got, want);
  expect_same(got, want, sb);
  std::vector<int32_t> ids;
  for (const auto& g : got) ids.push_back(g.token_id);
  std::sort(ids.begin(), ids.end());
  EXPECT_GT(std::unique(ids.begin(), ids.end()) - ids.begin(), 500) << "draws should spread";
}

TEST_F(CudaSampler, TiesAndMaskedRows) {
  TRACE_SEED();
  // Logits with many exact ties (quantised to 0.5) exercise the lowest-id rules of argmax, top-k
  // and top-p; a row whose every token but one is banned must give that token.
  const int32_t V = 5000, R = 240;
  SamplingBatch sb = mixed_rows(R - 1, V, rng_);
  std::vector<float> l = random_logits(R, V, 2.0f);
  for (auto& x : l) x = std::round(x * 2.0f) / 2.0f;
  SamplingRow only;
  only.temperature = 1.0f;
  only.seed = 5;
  std::vector<int32_t> banned;
  for (int32_t t = 0; t < V; ++t) {
    if (t != 1234) banned.push_back(t);
  }
  LogitEditBuilder eb(V);
  eb.append(only, banned, {}, {}, {}, sb.edits);
  sb.rows.push_back(only);
  std::vector<SampledToken> got, want;
  run(l, V, sb, got, want);
  expect_same(got, want, sb);
  EXPECT_EQ(got.back().token_id, 1234);
}

TEST_F(CudaSampler, GrammarBitmasksMatchReference) {
  TRACE_SEED();
  // Rows of every kind, some with a structured-output bitmask (sparse, dense, one token), with
  // logprobs: the GPU must pick the same tokens, only allowed ones, and take logprobs over the
  // masked row as the reference does.
  const int32_t V = 128256, R = 96;
  SamplingBatch sb = mixed_rows(R, V, rng_);
  const int32_t W = sampling::bitmask_words(V);
  sb.mask_words = W;
  int32_t m = 0;
  for (int32_t i = 0; i < R; i += 2) {
    sb.rows[size_t(i)].mask_row = m++;
    std::vector<uint32_t> words(size_t(W), 0u);
    const int kind = (i / 2) % 3;
    for (int32_t t = 0; t < V; ++t) {
      const bool on = kind == 0   ? rng_.uniform() < 0.01
                      : kind == 1 ? rng_.uniform() < 0.7
                                  : t == int32_t(rng_.next_u64() % 7) + 100;
      if (on) words[size_t(t >> 5)] |= 1u << (t & 31);
    }
    words[size_t(99 >> 5)] |= 1u << (99 & 31);  // never empty
    sb.masks.insert(sb.masks.end(), words.begin(), words.end());
  }
  std::vector<SampledToken> got, want;
  run(random_logits(R, V, 3.0f), V, sb, got, want);
  expect_same(got, want, sb);
  for (int32_t i = 0; i < R; ++i) {
    const int32_t mr = sb.rows[size_t(i)].mask_row;
    if (mr < 0) continue;
    const uint32_t* w = sb.masks.data() + size_t(mr) * size_t(W);
    EXPECT_TRUE(sampling::mask_allows(w, got[size_t(i)].token_id)) << "row " << i;
  }
}

TEST_F(CudaSampler, PaddedRowsDoNotChangeTheRealOnes) {
  TRACE_SEED();
  const int32_t V = 2000, R = 5;
  const SamplingBatch sb = mixed_rows(R, V, rng_);
  const std::vector<float> l = random_logits(R, V, 2.0f);
  std::vector<SampledToken> a, b, want;
  run(l, V, sb, a, want);
  run(l, V, sb, b, want, 16);
  expect_same(a, want, sb);
  expect_same(b, want, sb);
}

TEST_F(CudaSampler, FilteredDistributionsMatchChiSquare) {
  TRACE_SEED();
  const std::vector<float> toy = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f, 0.0f, 1.5f};
  const int32_t V = int32_t(toy.size());
  struct Case {
    float t;
    int32_t k;
    float p, min_p;
  };
  for (const Case c :
       {Case{1.0f, 0, 1.0f, 0.0f}, Case{0.7f, 3, 1.0f, 0.0f}, Case{1.0f, 0, 0.8f, 0.0f},
        Case{1.0f, 0, 1.0f, 0.2f}, Case{1.2f, 5, 0.9f, 0.05f}}) {
    SCOPED_TRACE(::testing::Message()
                 << "T " << c.t << " top_k " << c.k << " top_p " << c.p << " min_p " << c.min_p);
    const auto want = test::expected_dist(toy, c.t, c.k, c.p, c.min_p);
    std::vector<int64_t> counts(size_t(V), 0);
    const int32_t R = kMaxRows, batches = 100;  // 102,400 draws
    std::vector<float> l(size_t(R) * size_t(V));
    for (int32_t r = 0; r < R; ++r) std::copy(toy.begin(), toy.end(), l.begin() + r * V);
    const uint64_t key = rng_.next_u64();
    for (int32_t bi = 0; bi < batches; ++bi) {
      SamplingBatch sb;
      for (int32_t r = 0; r < R; ++r) {
        SamplingRow row;
        row.temperature = c.t;
        row.top_k = c.k;
        row.top_p = c.p;
        row.min_p = c.min_p;
        row.seed = key;
        row.counter = uint64_t(bi) * uint64_t(R) + uint64_t(r);
        sb.rows.push_back(row);
      }
      std::vector<SampledToken> got, ref;
      run(l, V, sb, got, ref);
      if (bi == 0) expect_same(got, ref, sb);
      for (const auto& g : got) ++counts[size_t(g.token_id)];
    }
    const test::ChiSquare cs = test::chi_square(counts, want);
    for (int32_t t : cs.drawn_but_filtered)
      ADD_FAILURE() << "token " << t << " must be filtered out";
    ASSERT_GE(cs.df, 1);
    EXPECT_LT(cs.chi2, test::kChi2Crit[cs.df]) << "df " << cs.df;
  }
}

// A token drawn from q with the draft's own Philox stream (as the draft proposer draws).
int32_t draw_from(const float* q, int32_t V, uint64_t seed, uint64_t counter) {
  const double u = sampling::uniform53(seed, counter, sampling::kStreamDraft);
  double acc = 0;
  for (int32_t i = 0; i < V; ++i) {
    acc += double(q[i]);
    if (u < acc) return i;
  }
  return V - 1;
}

// Normalised in double, stored as floats.
void normalise(std::vector<float>& w) {
  double s = 0;
  for (float x : w) s += double(x);
  for (float& x : w) x = float(double(x) / s);
}

// Rows verifying sampled drafts (issue 26): q close to the row's own distribution (mostly
// accepted), unrelated to it (mostly rejected: the residual draw), or one-hot; greedy rows and
// rows without a draft among them. The device's accept / reject decisions and tokens are the
// reference's, token for token.
TEST_F(CudaSampler, SampledDraftRowsMatchReference) {
  TRACE_SEED();
  for (int32_t V : {50, 1000, 128256}) {
    SCOPED_TRACE(::testing::Message() << "vocab " << V);
    const int32_t R = V > 10000 ? 48 : 240;
    SamplingBatch sb = mixed_rows(R, V, rng_);
    const std::vector<float> l = random_logits(R, V, 2.0f);
    std::vector<float> q(static_cast<size_t>(V));
    for (int32_t i = 0; i < R; ++i) {
      SamplingRow& row = sb.rows[size_t(i)];
      if (i % 7 == 6) continue;  // no draft
      const float* li = l.data() + size_t(i) * size_t(V);
      const int kind = i % 3;
      if (kind == 0) {  // near the row's own softmax
        const float t = sampling::is_greedy(row) ? 1.0f : row.temperature;
        const float mx = *std::max_element(li, li + V);
        for (int32_t t2 = 0; t2 < V; ++t2)
          q[size_t(t2)] = float(std::exp((double(li[t2]) - mx) / t + 0.3 * rng_.normal()));
      } else if (kind == 1) {  // unrelated and peaked
        for (auto& x : q) x = float(std::pow(rng_.uniform(), 6.0));
      } else {  // one-hot on the row's argmax or on a random token
        std::fill(q.begin(), q.end(), 0.0f);
        const int32_t at = i % 2 == 0 ? int32_t(std::max_element(li, li + V) - li)
                                      : int32_t(rng_.next_u64() % uint64_t(V));
        q[size_t(at)] = 1.0f;
      }
      normalise(q);
      row.draft_token = draw_from(q.data(), V, row.seed, row.counter);
      row.draft_row = int32_t(sb.draft_probs.size() / size_t(V));
      sb.draft_probs.insert(sb.draft_probs.end(), q.begin(), q.end());
    }
    std::vector<SampledToken> got, want;
    run(l, V, sb, got, want);
    expect_same(got, want, sb);
    int accepted = 0, rejected = 0;
    for (int32_t i = 0; i < R; ++i) {
      const SamplingRow& row = sb.rows[size_t(i)];
      if (row.draft_row < 0 || sampling::is_greedy(row)) continue;
      (want[size_t(i)].token_id == row.draft_token ? accepted : rejected) += 1;
    }
    EXPECT_GT(accepted, 0);
    EXPECT_GT(rejected, 0);
    // Padded like a graph step: the real rows' tokens do not change.
    std::vector<SampledToken> padded;
    run(l, V, sb, padded, want, R + 7);
    expect_same(padded, want, sb);
  }
}

// The tokens of rows verifying sampled drafts follow the target distribution (after top-k /
// top-p), whatever q is: chi-square over 102,400 rows on 8 tokens, q with mass on filtered tokens
// and too little on likely ones.
TEST_F(CudaSampler, SampledDraftRowsKeepTheTargetDistribution) {
  TRACE_SEED();
  const std::vector<float> toy = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f, 0.0f, 1.5f};
  const int32_t V = int32_t(toy.size());
  std::vector<float> q = {3.0f, 1.0f, 1.0f, 0.2f, 2.0f, 1.0f, 4.0f, 1.0f};
  normalise(q);
  struct Case {
    float t;
    int32_t k;
    float p;
  };
  for (const Case c : {Case{1.0f, 0, 1.0f}, Case{0.7f, 3, 1.0f}, Case{1.0f, 0, 0.8f}}) {
    SCOPED_TRACE(::testing::Message() << "T " << c.t << " top_k " << c.k << " top_p " << c.p);
    const auto want = test::expected_dist(toy, c.t, c.k, c.p, 0.0f);
    std::vector<int64_t> counts(size_t(V), 0);
    const int32_t R = kMaxRows, batches = 100;
    std::vector<float> l(size_t(R) * size_t(V));
    for (int32_t r = 0; r < R; ++r) std::copy(toy.begin(), toy.end(), l.begin() + r * V);
    const uint64_t key = rng_.next_u64();
    int64_t accepted = 0;
    for (int32_t bi = 0; bi < batches; ++bi) {
      SamplingBatch sb;
      for (int32_t r = 0; r < R; ++r) {
        SamplingRow row;
        row.temperature = c.t;
        row.top_k = c.k;
        row.top_p = c.p;
        row.seed = key;
        row.counter = uint64_t(bi) * uint64_t(R) + uint64_t(r);
        row.draft_token = draw_from(q.data(), V, row.seed, row.counter);
        row.draft_row = r;
        sb.rows.push_back(row);
        sb.draft_probs.insert(sb.draft_probs.end(), q.begin(), q.end());
      }
      std::vector<SampledToken> got, ref;
      run(l, V, sb, got, ref);
      if (bi == 0) expect_same(got, ref, sb);
      for (int32_t r = 0; r < R; ++r) {
        ++counts[size_t(got[size_t(r)].token_id)];
        accepted += got[size_t(r)].token_id == sb.rows[size_t(r)].draft_token ? 1 : 0;
      }
    }
    const test::ChiSquare cs = test::chi_square(counts, want);
    for (int32_t t : cs.drawn_but_filtered)
      ADD_FAILURE() << "token " << t << " must be filtered out";
    ASSERT_GE(cs.df, 1);
    EXPECT_LT(cs.chi2, test::kChi2Crit[cs.df]) << "df " << cs.df;
    // Acceptance is sum_x min(p(x), q(x)) (within 1 %).
    double best = 0;
    for (int32_t t = 0; t < V; ++t) best += std::min(want[size_t(t)], double(q[size_t(t)]));
    EXPECT_NEAR(double(accepted) / double(R * batches), best, 0.01);
  }
}

}  // namespace
}  // namespace inferd
