#include "engine/block_pool.h"

#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "core/error.h"
#include "engine/kv_cache_manager.h"

namespace inferd {
namespace {

std::vector<int32_t> iota(int32_t n, int32_t start) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(BlockHash, ChainsParentAndTokens) {
  const auto a = iota(4, 0), b = iota(4, 1);
  const BlockHash h1 = hash_block(kRootBlockHash, a);
  EXPECT_EQ(h1, hash_block(kRootBlockHash, a));
  EXPECT_FALSE(h1 == hash_block(kRootBlockHash, b));
  EXPECT_FALSE(hash_block(h1, a) == hash_block(kRootBlockHash, a));
  EXPECT_NE(h1.lo, h1.hi);
  // Many distinct blocks give distinct hashes in both lanes.
  std::set<uint64_t> lo, hi;
  for (int32_t i = 0; i < 5000; ++i) {
    const std::vector<int32_t> t = {i, i / 7, i % 13, 5};
    const BlockHash h = hash_block(kRootBlockHash, t);
    lo.insert(h.lo);
    hi.insert(h.hi);
  }
  EXPECT_EQ(lo.size(), 5000u);
  EXPECT_EQ(hi.size(), 5000u);
}

TEST(BlockPool, AllocateFreeAndRefCounts) {
  BlockPool pool(4, 2, /*enable_caching=*/true);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) got.insert(pool.allocate());
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(*got.begin(), 0);
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.num_allocatable(), 0);
  pool.incref(2);
  pool.decref(2);
  EXPECT_EQ(pool.num_allocatable(), 0);
  pool.decref(2);
  EXPECT_EQ(pool.num_allocatable(), 1);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  for (int32_t b = 0; b < 4; ++b) pool.decref(b);
  EXPECT_EQ(pool.num_free(), 4);
  EXPECT_THROW(pool.decref(1), InternalError);
  pool.check_invariants();
}

TEST(BlockPool, CachedBlocksAreReusedAndEvictedLeastRecentlyFreedFirst) {
  BlockPool pool(3, 2, true);
  const int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  const std::vector<int32_t> ta = {1, 2}, tb = {3, 4};
  const BlockHash ha = hash_block(kRootBlockHash, ta), hb = hash_block(ha, tb);
  EXPECT_TRUE(pool.register_block(a, ha, kRootBlockHash, ta));
  EXPECT_TRUE(pool.register_block(b, hb, ha, tb));
  EXPECT_FALSE(pool.register_block(c, ha, kRootBlockHash, ta));  // content already cached
  EXPECT_EQ(pool.lookup(ha, kRootBlockHash, ta), a);
  EXPECT_EQ(pool.lookup(hb, ha, tb), b);
  // Collision checks: right hash but different tokens or parent is a miss.
  EXPECT_EQ(pool.lookup(ha, kRootBlockHash, std::vector<int32_t>{1, 3}), -1);
  EXPECT_EQ(pool.lookup(hb, kRootBlockHash, tb), -1);
  // Free b then a: both stay cached; the uncached c goes to the front and is reused first.
  pool.decref(b);
  pool.decref(a);
  pool.decref(c);
  EXPECT_EQ(pool.num_cached_unreferenced(), 2);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_EQ(pool.allocate(), c);
  EXPECT_EQ(pool.num_evictions(), 0);
  // A hit takes a cached block back out of the queue.
  pool.incref(a);
  EXPECT_EQ(pool.num_cached_unreferenced(), 1);
  pool.decref(a);  // a is now the most recently freed
  // Next allocation evicts b (freed longest ago), not a.
  EXPECT_EQ(pool.allocate(), b);
  EXPECT_EQ(pool.num_evictions(), 1);
  EXPECT_EQ(pool.lookup(hb, ha, tb), -1);
  EXPECT_EQ(pool.lookup(ha, kRootBlockHash, ta), a);
  pool.check_invariants();
}

// Sleep mode: the KV behind every cached prefix is gone after a wake.
TEST(BlockPool, ResetPrefixCacheForgetsEveryCachedBlockOnlyWhenNothingIsReferenced) {
  BlockPool pool(4, 2, /*enable_caching=*/true);
  const auto t0 = iota(2, 0), t1 = iota(2, 10);
  const BlockHash h0 = hash_block(kRootBlockHash, t0), h1 = hash_block(h0, t1);
  const int32_t a = pool.allocate(), b = pool.allocate();
  ASSERT_TRUE(pool.register_block(a, h0, kRootBlockHash, t0));
  ASSERT_TRUE(pool.register_block(b, h1, h0, t1));
  EXPECT_FALSE(pool.reset_prefix_cache());  // referenced blocks: nothing changes
  EXPECT_EQ(pool.lookup(h0, kRootBlockHash, t0), a);
  pool.decref(a);
  pool.decref(b);
  EXPECT_EQ(pool.num_cached_unreferenced(), 2);
  EXPECT_TRUE(pool.reset_prefix_cache());
  EXPECT_EQ(pool.lookup(h0, kRootBlockHash, t0), -1);
  EXPECT_EQ(pool.lookup(h1, h0, t1), -1);
  EXPECT_EQ(pool.num_cached_unreferenced(), 0);
  EXPECT_EQ(pool.num_free(), 4);
  pool.check_invariants();
  // The blocks serve and cache again.
  const int32_t c = pool.allocate();
  EXPECT_TRUE(pool.register_block(c, h0, kRootBlockHash, t0));
  pool.check_invariants();
}

TEST(BlockPool, CachingOffNeverCaches) {
  BlockPool pool(2, 2, false);
  const int32_t a = pool.allocate();
  const std::vector<int32_t> t = {1, 2};
  const BlockHash h = hash_block(kRootBlockHash, t);
  EXPECT_FALSE(pool.register_block(a, h, kRootBlockHash, t));
  EXPECT_EQ(pool.lookup(h, kRootBlockHash, t), -1);
}

Sequence make_seq(std::vector<int32_t> tokens) {
  Sequence s;
  s.prompt_len = int32_t(tokens.size());
  s.tokens = std::move(tokens);
  return s;
}

TEST(KvCacheManager, PrefixHitsNeverCoverTheLastToken) {
  KvCacheManager kv(16, 4, true);
  Sequence a = make_seq(iota(8, 100));  // exactly two blocks
  kv.update_hashes(a);
  std::vector<int32_t> prefix;
  kv.find_prefix(a, prefix);
  EXPECT_TRUE(prefix.empty());
  ASSERT_TRUE(kv.allocate(a, 8));
  EXPECT_EQ(a.blocks.size(), 2u);
  a.num_computed = 8;
  kv.register_computed(a);
  EXPECT_EQ(a.num_registered_blocks, 2);

  Sequence same = make_seq(iota(8, 100));
  kv.update_hashes(same);
  kv.find_prefix(same, prefix);
  ASSERT_EQ(prefix.size(), 1u);  // the block with the last token is recomputed
  EXPECT_EQ(prefix[0], a.blocks[0]);

  Sequence longer = make_seq(iota(11, 100));
  kv.update_hashes(longer);
  kv.find_prefix(longer, prefix);
  ASSERT_EQ(prefix.size(), 2u);
  longer.num_computed = 8;
  ASSERT_TRUE(kv.allocate(longer, 3, prefix));
  EXPECT_EQ(longer.blocks.size(), 3u);
  EXPECT_EQ(kv.pool().ref_count(a.blocks[0]), 2);

  Sequence other = make_seq({100, 101, 102, 999, 104, 105, 106, 107, 1});
  kv.update_hashes(other);
  kv.find_prefix(other, prefix);
  EXPECT_TRUE(prefix.empty());

  kv.free(a);
  kv.free(longer);
  EXPECT_EQ(kv.pool().num_used(), 0);
  EXPECT_EQ(kv.pool().num_cached_unreferenced(), 2);
  kv.pool().check_invariants();
}

TEST(KvCacheManager, AllocateFailsWithoutChangingAnything) {
  KvCacheManager kv(3, 4, true);
  Sequence a = make_seq(iota(20, 0));
  EXPECT_FALSE(kv.allocate(a, 13));  // needs 4 blocks
  EXPECT_TRUE(a.blocks.empty());
  EXPECT_EQ(kv.pool().num_allocatable(), 3);
  EXPECT_TRUE(kv.allocate(a, 12));
  EXPECT_EQ(kv.pool().num_allocatable(), 0);
  kv.free(a);
  EXPECT_EQ(kv.pool().num_free(), 3);
}

TEST(KvCacheManager, SharesFirstSequencesPromptBlocksWithoutCaching) {
  KvCacheManager kv(16, 4, false);
  Sequence p = make_seq(iota(10, 0));
  ASSERT_TRUE(kv.allocate(p, 10));
  p.num_computed = 10;
  p.status = SeqStatus::kRunning;
  Sequence c = make_seq(iota(10, 0));
  c.share_from = &p;
  std::vector<int32_t> prefix;
  kv.find_prefix(c, prefix);
  ASSERT_EQ(prefix.size(), 2u);
  EXPECT_EQ(prefix[0], p.blocks[0]);
  EXPECT_EQ(prefix[1], p.blocks[1]);
  c.num_computed = 8;
  ASSERT_TRUE(kv.allocate(c, 2, prefix));
  EXPECT_EQ(kv.pool().num_used(), 4);
  kv.free(p);
  EXPECT_EQ(kv.pool().num_used(), 3);
  kv.free(c);
  EXPECT_EQ(kv.pool().num_free(), 16);
}

}  // namespace
}  // namespace inferd
