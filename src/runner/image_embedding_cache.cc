// Image embeddings by content hash, LRU within a byte budget (see image_embedding_cache.h).
#include "runner/image_embedding_cache.h"

namespace inferd {

ImageEmbeddingCache::Embeddings ImageEmbeddingCache::find(const media::ImageHash& h) {
  std::lock_guard lk(mu_);
  auto it = index_.find(h);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->emb;
}

void ImageEmbeddingCache::insert(const media::ImageHash& h, Embeddings e) {
  std::lock_guard lk(mu_);
  if (auto it = index_.find(h); it != index_.end()) {
    bytes_ -= bytes_of(it->second->emb);
    lru_.erase(it->second);
    index_.erase(it);
  }
  if (!e || bytes_of(e) > capacity_) return;
  lru_.push_front({h, std::move(e)});
  index_[h] = lru_.begin();
  bytes_ += bytes_of(lru_.front().emb);
  while (bytes_ > capacity_) {
    bytes_ -= bytes_of(lru_.back().emb);
    index_.erase(lru_.back().hash);
    lru_.pop_back();
  }
}

int64_t ImageEmbeddingCache::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}
size_t ImageEmbeddingCache::size() const {
  std::lock_guard lk(mu_);
  return lru_.size();
}
int64_t ImageEmbeddingCache::hits() const {
  std::lock_guard lk(mu_);
  return hits_;
}
int64_t ImageEmbeddingCache::misses() const {
  std::lock_guard lk(mu_);
  return misses_;
}

}  // namespace inferd
