// The KV block pool: a fixed set of block ids with reference counts, a free queue and the prefix
// cache (full blocks keyed by a 128-bit hash of their tokens and of everything before them).
//
// Unreferenced blocks live in one queue, allocated from the front. A freed block that holds no
// reusable content goes to the front (reused first); a freed block that is registered in the
// prefix cache goes to the back, so cached blocks are evicted least-recently-freed first. Taking a
// cached block off the front for new content evicts it from the cache.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace inferd {

struct BlockHash {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const BlockHash&) const = default;
};

// Hash of the block before the first one.
inline constexpr BlockHash kRootBlockHash{0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull};

// Chains `parent` (the hash of every block before) with the tokens of one full block.
BlockHash hash_block(const BlockHash& parent, std::span<const int32_t> tokens);

class BlockPool {
 public:
  BlockPool(int32_t num_blocks, int32_t block_size, bool enable_caching);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  bool caching() const { return caching_; }

  // Blocks that can be handed out now (unreferenced: free or cached).
  int32_t num_allocatable() const { return queue_size_; }
  int32_t num_used() const { return num_blocks_ - queue_size_; }
  int32_t num_cached_unreferenced() const { return num_cached_in_queue_; }
  int32_t num_free() const { return queue_size_ - num_cached_in_queue_; }
  int64_t num_evictions() const { return evictions_; }
  int32_t ref_count(int32_t block) const { return ref_[size_t(block)]; }
  bool is_cached(int32_t block) const { return hashed_[size_t(block)]; }

  // Takes an unreferenced block (ref count 1), evicting its cached content. -1 when none.
  int32_t allocate();
  // Adds a reference (a cached unreferenced block leaves the queue).
  void incref(int32_t block);
  // Drops a reference; at zero the block returns to the queue.
  void decref(int32_t block);

  // The cached block holding exactly `tokens` after the prefix hashed as `parent`, or -1.
  int32_t lookup(const BlockHash& hash, const BlockHash& parent,
                 std::span<const int32_t> tokens) const;
  // Registers a full, computed, referenced block. Returns false (and leaves the block uncached)
  // when caching is off or that content is already cached in another block.
  bool register_block(int32_t block, const BlockHash& hash, const BlockHash& parent,
                      std::span<const int32_t> tokens);
  // Takes a referenced block out of the prefix cache, because its holder is about to overwrite
  // part of it (KvCacheManager::truncate). Nothing when it is not cached.
  void unregister_block(int32_t block);
  // Forgets every cached prefix (sleep mode: the KV memory behind them is gone). Only when no
  // block is referenced; returns false (changing nothing) otherwise.
  bool reset_prefix_cache();

  // Checks every internal invariant (tests).
  void check_invariants() const;

 private:
  struct HashOf {
    size_t operator()(const BlockHash& h) const {
      return size_t(h.lo ^ (h.hi * 0x9e3779b97f4a7c15ull));
    }
  };
  void queue_remove(int32_t b);
  void queue_push_front(int32_t b);
  void queue_push_back(int32_t b);
  void uncache(int32_t b);

  int32_t num_blocks_;
  int32_t block_size_;
  bool caching_;
  std::vector<int32_t> ref_;
  // Intrusive doubly linked queue; index num_blocks_ is the sentinel.
  std::vector<int32_t> prev_, next_;
  std::vector<uint8_t> in_queue_;
  int32_t queue_size_ = 0;
  int32_t num_cached_in_queue_ = 0;
  // Prefix cache.
  std::vector<uint8_t> hashed_;
  std::vector<BlockHash> hash_, parent_;
  std::vector<int32_t> tokens_;  // [num_blocks * block_size], content of cached blocks
  std::unordered_map<BlockHash, int32_t, HashOf> map_;
  int64_t evictions_ = 0;
};

}  // namespace inferd
