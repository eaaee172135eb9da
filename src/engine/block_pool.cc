#include "engine/block_pool.h"

#include <algorithm>

#include "core/error.h"

namespace inferd {

namespace {
// MurmurHash3's 64-bit finalizer: full avalanche.
inline uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}
}  // namespace

BlockHash hash_block(const BlockHash& parent, std::span<const int32_t> tokens) {
  // Two independent 64-bit lanes (different constants), each a chain of full-avalanche mixes.
  uint64_t a = fmix64(parent.lo ^ 0x243f6a8885a308d3ull) ^ parent.hi;
  uint64_t b = fmix64(parent.hi ^ 0x13198a2e03707344ull) + parent.lo;
  for (int32_t t : tokens) {
    const uint64_t x = uint64_t(uint32_t(t));
    a = fmix64(a ^ (x * 0x9e3779b97f4a7c15ull + 0xa4093822299f31d0ull));
    b = fmix64((b + x) * 0xc2b2ae3d27d4eb4full ^ 0x082efa98ec4e6c89ull);
  }
  a = fmix64(a ^ uint64_t(tokens.size()));
  b = fmix64(b + uint64_t(tokens.size()) * 0x165667b19e3779f9ull);
  return {a, b};
}

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size, bool enable_caching)
    : num_blocks_(num_blocks), block_size_(block_size), caching_(enable_caching) {
  INFERD_CHECK(num_blocks > 0 && block_size > 0, "bad pool {} x {}", num_blocks, block_size);
  const size_t n = size_t(num_blocks);
  ref_.assign(n, 0);
  prev_.assign(n + 1, 0);
  next_.assign(n + 1, 0);
  in_queue_.assign(n, 0);
  hashed_.assign(n, 0);
  hash_.assign(n, {});
  parent_.assign(n, {});
  if (caching_) tokens_.assign(n * size_t(block_size), 0);
  const int32_t s = num_blocks_;
  prev_[size_t(s)] = next_[size_t(s)] = s;
  for (int32_t b = 0; b < num_blocks; ++b) queue_push_back(b);
}

void BlockPool::queue_remove(int32_t b) {
  INFERD_CHECK(in_queue_[size_t(b)], "block {} not in queue", b);
  next_[size_t(prev_[size_t(b)])] = next_[size_t(b)];
  prev_[size_t(next_[size_t(b)])] = prev_[size_t(b)];
  in_queue_[size_t(b)] = 0;
  --queue_size_;
  if (hashed_[size_t(b)]) --num_cached_in_queue_;
}

void BlockPool::queue_push_front(int32_t b) {
  const int32_t s = num_blocks_;
  const int32_t first = next_[size_t(s)];
  next_[size_t(b)] = first;
  prev_[size_t(b)] = s;
  prev_[size_t(first)] = b;
  next_[size_t(s)] = b;
  in_queue_[size_t(b)] = 1;
  ++queue_size_;
  if (hashed_[size_t(b)]) ++num_cached_in_queue_;
}

void BlockPool::queue_push_back(int32_t b) {
  const int32_t s = num_blocks_;
  const int32_t last = prev_[size_t(s)];
  prev_[size_t(b)] = last;
  next_[size_t(b)] = s;
  next_[size_t(last)] = b;
  prev_[size_t(s)] = b;
  in_queue_[size_t(b)] = 1;
  ++queue_size_;
  if (hashed_[size_t(b)]) ++num_cached_in_queue_;
}

void BlockPool::uncache(int32_t b) {
  if (!hashed_[size_t(b)]) return;
  auto it = map_.find(hash_[size_t(b)]);
  INFERD_CHECK(it != map_.end() && it->second == b, "cached block {} missing from the map", b);
  map_.erase(it);
  hashed_[size_t(b)] = 0;
}

int32_t BlockPool::allocate() {
  if (queue_size_ == 0) return -1;
  const int32_t b = next_[size_t(num_blocks_)];
  queue_remove(b);
  if (hashed_[size_t(b)]) {
    uncache(b);
    ++evictions_;
  }
  ref_[size_t(b)] = 1;
  return b;
}

void BlockPool::incref(int32_t b) {
  INFERD_CHECK(b >= 0 && b < num_blocks_, "block {} out of range", b);
  if (ref_[size_t(b)] == 0) queue_remove(b);
  ++ref_[size_t(b)];
}

void BlockPool::decref(int32_t b) {
  INFERD_CHECK(b >= 0 && b < num_blocks_ && ref_[size_t(b)] > 0, "decref of free block {}", b);
  if (--ref_[size_t(b)] == 0) {
    if (hashed_[size_t(b)]) {
      queue_push_back(b);
    } else {
      queue_push_front(b);
    }
  }
}

int32_t BlockPool::lookup(const BlockHash& hash, const BlockHash& parent,
                          std::span<const int32_t> tokens) const {
  if (!caching_) return -1;
  auto it = map_.find(hash);
  if (it == map_.end()) return -1;
  const int32_t b = it->second;
  if (!(parent_[size_t(b)] == parent)) return -1;
  const int32_t* stored = tokens_.data() + size_t(b) * size_t(block_size_);
  if (!std::equal(tokens.begin(), tokens.end(), stored)) return -1;  // 128-bit collision
  return b;
}

bool BlockPool::register_block(int32_t b, const BlockHash& hash, const BlockHash& parent,
                               std::span<const int32_t> tokens) {
  if (!caching_) return false;
  INFERD_CHECK(ref_[size_t(b)] > 0, "registering unreferenced block {}", b);
  INFERD_CHECK(int32_t(tokens.size()) == block_size_, "registering a partial block");
  if (hashed_[size_t(b)]) return false;
  if (map_.count(hash)) return false;
  map_.emplace(hash, b);
  hashed_[size_t(b)] = 1;
  hash_[size_t(b)] = hash;
  parent_[size_t(b)] = parent;
  std::copy(tokens.begin(), tokens.end(), tokens_.data() + size_t(b) * size_t(block_size_));
  return true;
}

void BlockPool::unregister_block(int32_t b) {
  INFERD_CHECK(b >= 0 && b < num_blocks_ && ref_[size_t(b)] > 0, "unregistering free block {}", b);
  uncache(b);
}

bool BlockPool::reset_prefix_cache() {
  if (num_used() != 0) return false;
  for (int32_t b = 0; b < num_blocks_; ++b) uncache(b);
  num_cached_in_queue_ = 0;  // every block is in the queue, none cached now
  return true;
}

void BlockPool::check_invariants() const {
  int32_t count = 0, cached = 0;
  std::vector<uint8_t> seen(size_t(num_blocks_), 0);
  for (int32_t b = next_[size_t(num_blocks_)]; b != num_blocks_; b = next_[size_t(b)]) {
    INFERD_CHECK(!seen[size_t(b)], "block {} twice in the queue", b);
    seen[size_t(b)] = 1;
    INFERD_CHECK(ref_[size_t(b)] == 0, "queued block {} has ref {}", b, ref_[size_t(b)]);
    ++count;
    if (hashed_[size_t(b)]) ++cached;
  }
  INFERD_CHECK(count == queue_size_, "queue size {} != {}", count, queue_size_);
  INFERD_CHECK(cached == num_cached_in_queue_, "cached {} != {}", cached, num_cached_in_queue_);
  size_t hashed = 0;
  for (int32_t b = 0; b < num_blocks_; ++b) {
    INFERD_CHECK(bool(seen[size_t(b)]) == (ref_[size_t(b)] == 0), "block {} queue/ref mismatch", b);
    if (hashed_[size_t(b)]) {
      ++hashed;
      auto it = map_.find(hash_[size_t(b)]);
      INFERD_CHECK(it != map_.end() && it->second == b, "block {} hash not mapped", b);
    }
  }
  INFERD_CHECK(hashed == map_.size(), "map size {} != hashed {}", map_.size(), hashed);
}

}  // namespace inferd
