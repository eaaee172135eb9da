// Image embeddings computed once per image (issue 34): the vision tower's output (soft tokens /
// merged patch embeddings) kept by the image's content hash (media::image_hash), least recently
// used first out once the cache holds more than its byte budget. Thread-safe; entries are shared
// (a step may use one while it is evicted).
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "media/image_hash.h"

namespace inferd {

class ImageEmbeddingCache {
 public:
  using Embeddings = std::shared_ptr<const std::vector<float>>;
  explicit ImageEmbeddingCache(int64_t capacity_bytes) : capacity_(capacity_bytes) {}

  // The embeddings of `h`, or null; a hit makes the entry the most recently used.
  Embeddings find(const media::ImageHash& h);
  // Adds (or replaces) the entry, then evicts the least recently used ones over the budget (an
  // entry larger than the whole budget is not kept).
  void insert(const media::ImageHash& h, Embeddings e);

  int64_t bytes() const;
  size_t size() const;
  int64_t hits() const;
  int64_t misses() const;

 private:
  struct Entry {
    media::ImageHash hash;
    Embeddings emb;
  };
  static int64_t bytes_of(const Embeddings& e) { return int64_t(e->size() * sizeof(float)); }

  mutable std::mutex mu_;
  int64_t capacity_ = 0, bytes_ = 0, hits_ = 0, misses_ = 0;
  std::list<Entry> lru_;  // most recently used first
  std::map<media::ImageHash, std::list<Entry>::iterator> index_;
};

}  // namespace inferd
