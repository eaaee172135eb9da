// Per-sequence KV block management on top of the BlockPool: prefix-cache lookup at admission,
// growing the block table as tokens are scheduled, registering full computed blocks, freeing.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/block_pool.h"
#include "engine/sequence.h"

namespace inferd {

class KvCacheManager {
 public:
  KvCacheManager(int32_t num_blocks, int32_t block_size, bool enable_caching);

  BlockPool& pool() { return pool_; }
  const BlockPool& pool() const { return pool_; }
  int32_t block_size() const { return block_size_; }

  // Brings seq.block_hashes up to date with seq.tokens (call after tokens change).
  void update_hashes(Sequence& seq) const;

  // For a sequence holding no blocks: the blocks that already hold a prefix of its tokens
  // (prefix-cache hits, or the first sequence's prompt blocks for n > 1 without caching).
  // Never covers the last token, so at least one token is computed and gives logits.
  void find_prefix(const Sequence& seq, std::vector<int32_t>& out) const;

  // Makes seq's block table cover num_computed + num_new tokens; a sequence without blocks first
  // takes `prefix` (from find_prefix, shared by reference). Returns false (changing nothing) when
  // the pool has too few blocks.
  bool allocate(Sequence& seq, int32_t num_new, std::span<const int32_t> prefix = {});

  // Offers seq's full blocks whose KV is computed to the prefix cache.
  void register_computed(Sequence& seq);

  // Drops the KV of seq's tokens past its first `num_tokens` (speculative decoding rejects draft
  // tokens); num_tokens <= seq.num_computed. Blocks wholly past them are released, last first. The
  // block they end in, when it is seq's alone, stays with seq: seq will write its remaining slots
  // again, so it leaves the prefix cache (its hash named the dropped tokens). When another
  // sequence holds it too (n > 1, a prefix-cache hit), seq releases it instead, as writing into it
  // would change the other's KV, and keeps only the whole blocks before it. seq.tokens is left to
  // the caller; hashes of blocks past the kept tokens are dropped (update_hashes recomputes them).
  // Returns the tokens whose KV seq keeps (its new num_computed): num_tokens, or the start of a
  // shared block it ended in.
  int32_t truncate(Sequence& seq, int32_t num_tokens);

  // Releases every block of seq (last block first, so a cached prefix outlives its tail).
  void free(Sequence& seq);

 private:
  int32_t block_size_;
  BlockPool pool_;
};

}  // namespace inferd
