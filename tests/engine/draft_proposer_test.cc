// The draft-model proposer (issue 26) on the fake model, whose logits hash every token read back
// from its KV cache through the block table: the drafts are the draft's greedy continuation of the
// sequence's tokens, also after a partial acceptance (the draft's KV is cut back to the agreeing
// prefix; a stale draft token left in its KV would change the drafts), for several sequences in
// one batch; the KV of sequences that left the running set is freed; a full pool gives no drafts
// rather than failing; sampled drafts carry normalised distributions and are reproducible.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "engine/draft_proposer.h"
#include "engine/fake_model.h"

namespace inferd {
namespace {

using testing::FakeExecutor;
using testing::FakeModelSpec;
using testing::reference_greedy;

Sequence make_seq(int64_t id, int32_t n, int32_t salt) {
  Sequence s;
  s.id = id;
  for (int32_t i = 0; i < n; ++i) s.tokens.push_back((i * 7 + salt) % 64);
  s.prompt_len = n;
  s.sample_key = uint64_t(1000 + id);
  return s;
}

TEST(DraftProposer, GreedyDraftsFollowTheSequenceAfterPartialAcceptance) {
  FakeModelSpec spec;
  auto draft = std::make_shared<FakeExecutor>(spec);
  DraftProposer dp(draft, spec.vocab);
  Sequence a = make_seq(1, 10, 3), b = make_seq(2, 7, 5);
  std::vector<Sequence*> running = {&a, &b};
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    const std::vector<DraftProposer::Item> items = {{&a, 5, 0.0f}, {&b, 3, 0.0f}};
    dp.propose(items, running);
    EXPECT_EQ(a.drafts, reference_greedy(spec, a.tokens, 5));
    EXPECT_EQ(b.drafts, reference_greedy(spec, b.tokens, 3));
    EXPECT_TRUE(a.draft_probs.empty());
    // a accepts `round % 4` drafts then takes another token; b accepts all and a bonus.
    const int32_t take = round % 4;
    a.tokens.insert(a.tokens.end(), a.drafts.begin(), a.drafts.begin() + take);
    a.tokens.push_back((a.drafts[size_t(take)] + 1) % spec.vocab);
    b.tokens.insert(b.tokens.end(), b.drafts.begin(), b.drafts.end());
    b.tokens.push_back(17);
  }
}

TEST(DraftProposer, StoppedSequencesFreeTheirBlocksAndAFullPoolGivesNoDrafts) {
  FakeModelSpec spec;
  spec.num_blocks = 6;  // 24 positions
  auto draft = std::make_shared<FakeExecutor>(spec);
  DraftProposer dp(draft, spec.vocab);
  Sequence a = make_seq(1, 12, 1), b = make_seq(2, 9, 2);
  std::vector<Sequence*> running = {&a, &b};
  std::vector<DraftProposer::Item> items = {{&a, 4, 0.0f}, {&b, 4, 0.0f}};
  dp.propose(items, running);
  // The catch-up round takes 3 + 3 blocks; a's next position needs a fourth: a keeps its first
  // draft, b (12 positions with its drafts) gets all four.
  EXPECT_EQ(a.drafts, reference_greedy(spec, a.tokens, 1));
  EXPECT_EQ(b.drafts, reference_greedy(spec, b.tokens, 4));
  EXPECT_EQ(dp.num_free_blocks(), 0);
  // a finishes: its blocks come back at the next proposal; b now fits.
  running = {&b};
  items = {{&b, 4, 0.0f}};
  dp.propose(items, running);
  EXPECT_EQ(dp.num_states(), 1);
  EXPECT_EQ(b.drafts, reference_greedy(spec, b.tokens, 4));
  EXPECT_EQ(dp.num_free_blocks(), 6 - 3);  // b holds 9 + 3 = 12 positions
}

TEST(DraftProposer, SampledDraftsCarryTheirDistributionAndAreReproducible) {
  FakeModelSpec spec;
  std::vector<int32_t> first;
  for (int run = 0; run < 2; ++run) {
    DraftProposer dp(std::make_shared<FakeExecutor>(spec), spec.vocab);
    Sequence a = make_seq(1, 10, 3);
    std::vector<Sequence*> running = {&a};
    const std::vector<DraftProposer::Item> items = {{&a, 6, 1.0f}};
    dp.propose(items, running);
    ASSERT_EQ(a.drafts.size(), 6u);
    ASSERT_EQ(a.draft_probs.size(), 6u * size_t(spec.vocab));
    for (size_t j = 0; j < 6; ++j) {
      double sum = 0;
      for (int32_t v = 0; v < spec.vocab; ++v)
        sum += a.draft_probs[j * size_t(spec.vocab) + size_t(v)];
      EXPECT_NEAR(sum, 1.0, 1e-5);
      EXPECT_GT(a.draft_probs[j * size_t(spec.vocab) + size_t(a.drafts[j])], 0.0f);
    }
    if (run == 0) {
      first = a.drafts;
    } else {
      EXPECT_EQ(a.drafts, first);
    }
  }
  // Temperature 1 over logits in [-4, 4): not the greedy continuation every time.
  Sequence g = make_seq(1, 10, 3);
  EXPECT_NE(first, reference_greedy(spec, g.tokens, 6));
}

TEST(DraftProposer, AnotherVocabularySizeIsRefused) {
  FakeModelSpec spec;
  EXPECT_THROW(DraftProposer(std::make_shared<FakeExecutor>(spec), spec.vocab + 1), Error);
}

}  // namespace
}  // namespace inferd
