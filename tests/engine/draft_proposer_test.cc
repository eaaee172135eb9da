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

// Counts the greedy chains the proposer asks for and their rounds (run by the default, round by
// round on the host).
class ChainCountingExecutor final : public FakeExecutor {
 public:
  using FakeExecutor::FakeExecutor;
  void execute_greedy_chain(const ForwardBatch& batch, int32_t rounds,
                            std::span<int32_t> out) override {
    ++chains;
    chain_rounds.push_back(rounds);
    ModelExecutor::execute_greedy_chain(batch, rounds, out);
  }
  int chains = 0;
  std::vector<int32_t> chain_rounds;
};

TEST(DraftProposer, DecodeRoundsRunAsOneGreedyChain) {
  FakeModelSpec spec;
  auto draft = std::make_shared<ChainCountingExecutor>(spec);
  DraftProposer dp(draft, spec.vocab);
  Sequence a = make_seq(1, 10, 3), b = make_seq(2, 7, 5), c = make_seq(3, 5, 9);
  std::vector<Sequence*> running = {&a, &b, &c};
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    draft->chains = 0;
    draft->chain_rounds.clear();
    // Different k: the chain runs as long as the hungriest item wants; the others keep theirs.
    const std::vector<DraftProposer::Item> items = {{&a, 5, 0.0f}, {&b, 2, 0.0f}, {&c, 1, 0.0f}};
    dp.propose(items, running);
    EXPECT_EQ(a.drafts, reference_greedy(spec, a.tokens, 5));
    EXPECT_EQ(b.drafts, reference_greedy(spec, b.tokens, 2));
    EXPECT_EQ(c.drafts, reference_greedy(spec, c.tokens, 1));
    // The first time the catch-up round (whole prompts) gives every first draft and a and b go on
    // in one chain of 4 (c is done); afterwards every item's catch-up is one token (the accepted
    // drafts' KV is kept), so one chain of 5 gives all the drafts.
    EXPECT_EQ(draft->chains, 1);
    EXPECT_EQ(draft->chain_rounds, std::vector<int32_t>{round == 0 ? 4 : 5});
    // a accepts `round` drafts and takes another token (its stale KV must be cut back), b rejects
    // all (its next catch-up is one token: the chain starts at once), c accepts its draft.
    a.tokens.insert(a.tokens.end(), a.drafts.begin(), a.drafts.begin() + round);
    a.tokens.push_back((a.drafts[size_t(round)] + 1) % spec.vocab);
    b.tokens.push_back((b.drafts[0] + 3) % spec.vocab);
    c.tokens.push_back(c.drafts[0]);
  }
}

TEST(DraftProposer, AGreedyChainStartsFromADecodeBatchWithBlocksForEveryRound) {
  FakeModelSpec spec;
  FakeExecutor ex(spec);
  ForwardBatch b;
  b.token_ids = {5, 6};
  b.positions = {0, 1};
  b.logit_rows = {1};
  b.block_tables = {0, 1};
  b.seqs.push_back({0, 2, 2, 0, 2, -1});  // two tokens of one sequence: not a decode batch
  std::vector<int32_t> out(2);
  EXPECT_THROW(ex.execute_greedy_chain(b, 2, out), InternalError);
  b.token_ids = {6};
  b.positions = {0};
  b.logit_rows = {0};
  b.seqs[0] = {0, 1, 1, 0, 2, -1};  // position 0 of 8 in two blocks of 4
  out.resize(8);
  ex.execute_greedy_chain(b, 8, out);  // positions 0..7
  EXPECT_EQ(out, reference_greedy(spec, {6}, 8));
  out.resize(9);
  EXPECT_THROW(ex.execute_greedy_chain(b, 9, out), InternalError);  // position 8 has no block
  out.resize(3);
  EXPECT_THROW(ex.execute_greedy_chain(b, 4, out), InternalError);  // outputs for 3 of 4 rounds
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
