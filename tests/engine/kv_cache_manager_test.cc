// KvCacheManager::truncate: dropping the KV of a sequence's last tokens (speculative decoding)
// within a block, at a block boundary, to 0 and across blocks, with prefix caching on and off and
// with blocks shared by another sequence; then allocating again.
#include "engine/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace inferd {
namespace {

constexpr int32_t kBlock = 4;

Sequence make_seq(int64_t id, int32_t num_tokens, int32_t first = 0) {
  Sequence s;
  s.id = id;
  s.tokens.resize(size_t(num_tokens));
  std::iota(s.tokens.begin(), s.tokens.end(), first);
  s.prompt_len = num_tokens;
  s.status = SeqStatus::kRunning;
  return s;
}

// Schedules and computes `n` more tokens of `s` (blocks first), as one engine step does.
void compute(KvCacheManager& kv, Sequence& s, int32_t n) {
  ASSERT_TRUE(kv.allocate(s, n));
  s.num_computed += n;
  kv.register_computed(s);
}

// Admits `s` (holding no blocks) with its prefix-cache hits, then computes the rest.
void admit(KvCacheManager& kv, Sequence& s) {
  std::vector<int32_t> prefix;
  kv.update_hashes(s);
  kv.find_prefix(s, prefix);
  s.num_computed = int32_t(prefix.size()) * kBlock;
  ASSERT_TRUE(kv.allocate(s, s.num_tokens() - s.num_computed, prefix));
  s.num_computed = s.num_tokens();
  kv.register_computed(s);
}

// How many leading full blocks of `tokens` the prefix cache offers.
int32_t cached_prefix_blocks(const KvCacheManager& kv, std::vector<int32_t> tokens) {
  tokens.push_back(-1);  // find_prefix never covers the last token
  Sequence probe = make_seq(99, 0);
  probe.tokens = tokens;
  kv.update_hashes(probe);
  std::vector<int32_t> prefix;
  kv.find_prefix(probe, prefix);
  return int32_t(prefix.size());
}

// Replaces the tokens of `s` past `keep` (a rejected draft) with `fresh` ones.
void replace_tail(Sequence& s, int32_t keep, const std::vector<int32_t>& fresh) {
  s.tokens.resize(size_t(keep));
  s.tokens.insert(s.tokens.end(), fresh.begin(), fresh.end());
}

class TruncateTest : public ::testing::TestWithParam<bool> {
 protected:
  bool caching() const { return GetParam(); }
  KvCacheManager kv_{16, kBlock, GetParam()};
};

TEST_P(TruncateTest, WithinABlockKeepsItAndFreesTheRest) {
  Sequence s = make_seq(1, 10);
  compute(kv_, s, 10);  // blocks 4 + 4 + 2
  ASSERT_EQ(s.blocks.size(), 3u);
  const std::vector<int32_t> before = s.blocks;
  EXPECT_EQ(kv_.truncate(s, 6), 6);
  EXPECT_EQ(s.num_computed, 6);
  EXPECT_EQ(s.blocks, std::vector<int32_t>(before.begin(), before.begin() + 2));
  EXPECT_EQ(kv_.pool().num_allocatable(), 14);
  EXPECT_EQ(kv_.pool().ref_count(before[2]), 0);
  EXPECT_EQ(s.num_registered_blocks, caching() ? 1 : 0);
  kv_.pool().check_invariants();

  // The draft is replaced; the cut block is written again and a fresh one added.
  replace_tail(s, 6, {50, 51, 52, 53, 54});
  compute(kv_, s, 5);
  EXPECT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(s.blocks[0], before[0]);
  EXPECT_EQ(s.blocks[1], before[1]);
  EXPECT_EQ(kv_.pool().num_allocatable(), 13);
  kv_.pool().check_invariants();
}

TEST_P(TruncateTest, AtABlockBoundaryKeepsTheWholeBlocks) {
  Sequence s = make_seq(1, 12);
  compute(kv_, s, 12);
  const std::vector<int32_t> before = s.blocks;
  EXPECT_EQ(kv_.truncate(s, 8), 8);
  EXPECT_EQ(s.blocks, std::vector<int32_t>(before.begin(), before.begin() + 2));
  EXPECT_EQ(kv_.pool().num_allocatable(), 14);
  if (caching()) {
    // Both kept blocks stay in the prefix cache: their content did not change.
    EXPECT_TRUE(kv_.pool().is_cached(before[1]));
    EXPECT_EQ(s.num_registered_blocks, 2);
    EXPECT_EQ(
        cached_prefix_blocks(kv_, std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + 8)), 2);
  }
  kv_.pool().check_invariants();
}

TEST_P(TruncateTest, ToZeroReleasesEverything) {
  Sequence s = make_seq(1, 9);
  compute(kv_, s, 9);
  EXPECT_EQ(kv_.truncate(s, 0), 0);
  EXPECT_TRUE(s.blocks.empty());
  EXPECT_EQ(s.num_computed, 0);
  EXPECT_EQ(s.num_registered_blocks, 0);
  EXPECT_TRUE(s.block_hashes.empty());
  EXPECT_EQ(kv_.pool().num_allocatable(), 16);
  EXPECT_EQ(kv_.pool().num_cached_unreferenced(), caching() ? 2 : 0);
  kv_.pool().check_invariants();
  // Computing it again from the start takes 3 blocks.
  compute(kv_, s, 9);
  EXPECT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(kv_.pool().num_allocatable(), 13);
  kv_.pool().check_invariants();
}

TEST_P(TruncateTest, AcrossSeveralBlocksFreesLastFirst) {
  Sequence s = make_seq(1, 20);
  compute(kv_, s, 20);  // 5 full blocks
  const std::vector<int32_t> before = s.blocks;
  EXPECT_EQ(kv_.truncate(s, 5), 5);
  EXPECT_EQ(s.blocks, std::vector<int32_t>(before.begin(), before.begin() + 2));
  EXPECT_EQ(kv_.pool().num_allocatable(), 14);
  if (caching()) {
    // The released blocks still hold KV of their (dropped) tokens; freed last first, the deepest
    // block is the first evicted.
    EXPECT_TRUE(kv_.pool().is_cached(before[4]));
    EXPECT_FALSE(kv_.pool().is_cached(before[1]));  // cut: seq writes it again
  }
  // Fresh blocks for new tokens come from the uncached free ones first.
  replace_tail(s, 5, std::vector<int32_t>(11, 7));
  compute(kv_, s, 11);
  EXPECT_EQ(s.blocks.size(), 4u);
  EXPECT_EQ(s.blocks[1], before[1]);
  EXPECT_EQ(kv_.pool().num_allocatable(), 12);
  EXPECT_EQ(kv_.pool().num_evictions(), 0);
  kv_.pool().check_invariants();
  if (!caching()) return;
  // Ten more blocks take the 9 free ones and evict one cached block: the deepest one released.
  std::vector<int32_t> taken;
  for (int i = 0; i < 10; ++i) taken.push_back(kv_.pool().allocate());
  EXPECT_EQ(kv_.pool().num_evictions(), 1);
  EXPECT_FALSE(kv_.pool().is_cached(before[4]));
  EXPECT_TRUE(kv_.pool().is_cached(before[3]));
  EXPECT_TRUE(kv_.pool().is_cached(before[2]));
  for (int32_t b : taken) kv_.pool().decref(b);
  kv_.pool().check_invariants();
}

TEST(Truncate, ACutCachedBlockIsNoLongerOfferedForTheDroppedTokens) {
  KvCacheManager kv(16, kBlock, /*enable_caching=*/true);
  Sequence s = make_seq(1, 12);
  compute(kv, s, 12);
  const std::vector<int32_t> old_tokens = s.tokens;
  const int32_t cut = s.blocks[1];
  ASSERT_TRUE(kv.pool().is_cached(cut));
  ASSERT_EQ(cached_prefix_blocks(kv, old_tokens), 3);

  EXPECT_EQ(kv.truncate(s, 6), 6);
  EXPECT_FALSE(kv.pool().is_cached(cut));
  // Only block 0 still holds what the old tokens need; the chain stops at the cut block.
  EXPECT_EQ(cached_prefix_blocks(kv, old_tokens), 1);
  kv.pool().check_invariants();

  // New tokens are written into the cut block, which is cached again under its new content.
  replace_tail(s, 6, {90, 91, 92, 93, 94, 95});
  compute(kv, s, 6);
  EXPECT_EQ(s.blocks[1], cut);
  EXPECT_TRUE(kv.pool().is_cached(cut));
  EXPECT_EQ(cached_prefix_blocks(kv, s.tokens), 3);
  EXPECT_EQ(cached_prefix_blocks(kv, old_tokens), 1);

  // A request with the old tokens computes them again; nothing it finds holds other KV.
  Sequence other = make_seq(2, 0);
  other.tokens = old_tokens;
  other.tokens.push_back(7);
  other.prompt_len = other.num_tokens();
  admit(kv, other);
  EXPECT_EQ(other.blocks[0], s.blocks[0]);
  EXPECT_NE(other.blocks[1], cut);
  kv.pool().check_invariants();
}

TEST(Truncate, ABlockSharedThroughThePrefixCacheStaysWithItsOtherHolder) {
  KvCacheManager kv(16, kBlock, /*enable_caching=*/true);
  Sequence a = make_seq(1, 12);
  compute(kv, a, 12);
  Sequence b = make_seq(2, 10);  // the same first 8 tokens: a prefix hit of 2 blocks
  admit(kv, b);
  ASSERT_EQ(b.blocks[0], a.blocks[0]);
  ASSERT_EQ(b.blocks[1], a.blocks[1]);
  ASSERT_EQ(kv.pool().ref_count(a.blocks[1]), 2);
  const std::vector<int32_t> a_blocks = a.blocks;
  const int32_t b_own = b.blocks[2];

  // b ends in a shared block: it lets go of it and keeps the whole block before it.
  EXPECT_EQ(kv.truncate(b, 6), 4);
  EXPECT_EQ(b.num_computed, 4);
  EXPECT_EQ(b.blocks, std::vector<int32_t>{a_blocks[0]});
  EXPECT_EQ(b.num_registered_blocks, 1);
  EXPECT_EQ(kv.pool().ref_count(a_blocks[0]), 2);
  EXPECT_EQ(kv.pool().ref_count(a_blocks[1]), 1);
  EXPECT_EQ(kv.pool().ref_count(b_own), 0);
  // a is untouched, and its blocks are still offered for its tokens.
  EXPECT_EQ(a.blocks, a_blocks);
  EXPECT_EQ(a.num_computed, 12);
  EXPECT_TRUE(kv.pool().is_cached(a_blocks[1]));
  EXPECT_EQ(cached_prefix_blocks(kv, a.tokens), 3);
  kv.pool().check_invariants();

  // b computes its new tail in blocks of its own.
  replace_tail(b, 6, {70, 71, 72});
  b.num_computed = 4;
  compute(kv, b, 5);
  ASSERT_EQ(b.blocks.size(), 3u);
  EXPECT_EQ(b.blocks[0], a_blocks[0]);
  EXPECT_NE(b.blocks[1], a_blocks[1]);
  EXPECT_EQ(kv.pool().num_allocatable(), 16 - 3 - 2);
  kv.pool().check_invariants();

  // a ends in block 0, which b holds too: a lets go of everything, b keeps its blocks.
  EXPECT_EQ(kv.truncate(a, 2), 0);
  EXPECT_TRUE(a.blocks.empty());
  EXPECT_EQ(kv.pool().ref_count(b.blocks[0]), 1);
  EXPECT_TRUE(kv.pool().is_cached(b.blocks[0]));
  kv.pool().check_invariants();
}

TEST(Truncate, NGreaterThanOneWithoutCachingLeavesTheFirstSequencesBlocks) {
  KvCacheManager kv(16, kBlock, /*enable_caching=*/false);
  Sequence first = make_seq(1, 9);
  compute(kv, first, 9);
  Sequence second = make_seq(2, 9);
  second.share_from = &first;
  admit(kv, second);  // shares the first's 2 full prompt blocks
  ASSERT_EQ(second.blocks[0], first.blocks[0]);
  ASSERT_EQ(second.blocks[1], first.blocks[1]);
  const std::vector<int32_t> first_blocks = first.blocks;

  // Into the shared block 1: released, the first sequence keeps it.
  EXPECT_EQ(kv.truncate(second, 7), 4);
  EXPECT_EQ(second.blocks, std::vector<int32_t>{first_blocks[0]});
  EXPECT_EQ(kv.pool().ref_count(first_blocks[1]), 1);
  EXPECT_EQ(first.blocks, first_blocks);
  // Into its own block: kept.
  replace_tail(second, 7, {40, 41, 42});
  compute(kv, second, 6);
  const int32_t own = second.blocks[2];
  EXPECT_EQ(kv.truncate(second, 9), 9);
  EXPECT_EQ(second.blocks[2], own);
  EXPECT_EQ(kv.pool().ref_count(own), 1);
  kv.pool().check_invariants();
  EXPECT_EQ(kv.pool().num_allocatable(), 16 - 3 - 2);
}

INSTANTIATE_TEST_SUITE_P(PrefixCaching, TruncateTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "On" : "Off"; });

}  // namespace
}  // namespace inferd
