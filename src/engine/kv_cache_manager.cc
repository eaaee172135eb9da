#include "engine/kv_cache_manager.h"

#include <algorithm>

#include "core/error.h"
#include "engine/image_spans.h"

namespace inferd {

KvCacheManager::KvCacheManager(int32_t num_blocks, int32_t block_size, bool enable_caching)
    : block_size_(block_size), pool_(num_blocks, block_size, enable_caching) {}

namespace {

// The hash chain of a sequence starts at the root, or at a root of its LoRA adapter's own.
BlockHash root_hash(const Sequence& seq) {
  if (seq.adapter_id < 0) return kRootBlockHash;
  const int32_t tag[2] = {-1, seq.adapter_id};  // no token id is negative
  return hash_block(kRootBlockHash, tag);
}

// The parent hash block i chains from: the previous block's (or the root), with the images that
// have tokens in block i folded in.
BlockHash parent_of(const Sequence& seq, size_t i, int32_t bs) {
  const BlockHash p = i == 0 ? root_hash(seq) : seq.block_hashes[i - 1];
  if (seq.images.empty()) return p;
  return fold_images(p, seq.images, int32_t(i) * bs, int32_t(i + 1) * bs);
}

}  // namespace

void KvCacheManager::update_hashes(Sequence& seq) const {
  if (!pool_.caching()) return;
  const size_t full = size_t(seq.num_tokens() / block_size_);
  while (seq.block_hashes.size() < full) {
    const size_t i = seq.block_hashes.size();
    const BlockHash parent = parent_of(seq, i, block_size_);
    std::span<const int32_t> toks(seq.tokens.data() + i * size_t(block_size_), size_t(block_size_));
    seq.block_hashes.push_back(hash_block(parent, toks));
  }
}

void KvCacheManager::find_prefix(const Sequence& seq, std::vector<int32_t>& out) const {
  out.clear();
  INFERD_CHECK(seq.blocks.empty(), "find_prefix on a sequence holding blocks");
  const int32_t max_blocks = (seq.num_tokens() - 1) / block_size_;
  if (pool_.caching()) {
    INFERD_CHECK(int32_t(seq.block_hashes.size()) >= max_blocks, "stale block hashes");
    for (int32_t i = 0; i < max_blocks; ++i) {
      const BlockHash parent = parent_of(seq, size_t(i), block_size_);
      std::span<const int32_t> toks(seq.tokens.data() + size_t(i) * size_t(block_size_),
                                    size_t(block_size_));
      const int32_t b = pool_.lookup(seq.block_hashes[size_t(i)], parent, toks);
      if (b < 0) break;
      out.push_back(b);
    }
    return;
  }
  // No prefix cache: a later sequence of an n > 1 request shares the first one's full prompt
  // blocks while that one still holds them computed.
  const Sequence* p = seq.share_from;
  if (p == nullptr || p->status != SeqStatus::kRunning) return;
  const int32_t shareable = std::min({max_blocks, (seq.prompt_len - 1) / block_size_,
                                      p->num_computed / block_size_, int32_t(p->blocks.size())});
  for (int32_t i = 0; i < shareable; ++i) out.push_back(p->blocks[size_t(i)]);
}

bool KvCacheManager::allocate(Sequence& seq, int32_t num_new, std::span<const int32_t> prefix) {
  INFERD_CHECK(prefix.empty() || seq.blocks.empty(), "prefix for a sequence holding blocks");
  const int32_t have = int32_t(seq.blocks.size() + prefix.size());
  const int32_t need_tokens = seq.num_computed + num_new;
  const int32_t need_blocks = (need_tokens + block_size_ - 1) / block_size_;
  const int32_t fresh = need_blocks > have ? need_blocks - have : 0;
  int32_t prefix_from_queue = 0;
  for (int32_t b : prefix) prefix_from_queue += pool_.ref_count(b) == 0 ? 1 : 0;
  if (fresh + prefix_from_queue > pool_.num_allocatable()) return false;
  for (int32_t b : prefix) {
    pool_.incref(b);
    seq.blocks.push_back(b);
  }
  if (!prefix.empty()) seq.num_registered_blocks = int32_t(prefix.size());
  for (int32_t i = 0; i < fresh; ++i) {
    const int32_t b = pool_.allocate();
    INFERD_CHECK(b >= 0, "pool ran dry after a capacity check");
    seq.blocks.push_back(b);
  }
  return true;
}

void KvCacheManager::register_computed(Sequence& seq) {
  if (!pool_.caching()) return;
  update_hashes(seq);
  const int32_t full = std::min(seq.num_computed / block_size_, int32_t(seq.blocks.size()));
  for (int32_t i = seq.num_registered_blocks; i < full; ++i) {
    const BlockHash parent = parent_of(seq, size_t(i), block_size_);
    std::span<const int32_t> toks(seq.tokens.data() + size_t(i) * size_t(block_size_),
                                  size_t(block_size_));
    pool_.register_block(seq.blocks[size_t(i)], seq.block_hashes[size_t(i)], parent, toks);
  }
  if (full > seq.num_registered_blocks) seq.num_registered_blocks = full;
}

int32_t KvCacheManager::truncate(Sequence& seq, int32_t num_tokens) {
  INFERD_CHECK(num_tokens >= 0 && num_tokens <= seq.num_computed,
               "truncating sequence {} to {} tokens, {} computed", seq.id, num_tokens,
               seq.num_computed);
  size_t keep = size_t((num_tokens + block_size_ - 1) / block_size_);  // blocks holding them
  int32_t kept_tokens = num_tokens;
  if (num_tokens % block_size_ != 0 && keep <= seq.blocks.size()) {
    const int32_t cut = seq.blocks[keep - 1];
    if (pool_.ref_count(cut) > 1) {  // shared: not ours to write
      --keep;
      kept_tokens = int32_t(keep) * block_size_;
    } else {
      pool_.unregister_block(cut);
    }
  }
  while (seq.blocks.size() > keep) {
    pool_.decref(seq.blocks.back());
    seq.blocks.pop_back();
  }
  const int32_t full = kept_tokens / block_size_;
  seq.num_registered_blocks = std::min(seq.num_registered_blocks, full);
  if (seq.block_hashes.size() > size_t(full)) seq.block_hashes.resize(size_t(full));
  seq.num_computed = kept_tokens;
  return kept_tokens;
}

void KvCacheManager::free(Sequence& seq) {
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) pool_.decref(*it);
  seq.blocks.clear();
  seq.num_registered_blocks = 0;
}

}  // namespace inferd
