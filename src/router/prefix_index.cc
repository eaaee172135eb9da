#include "router/prefix_index.h"

#include <algorithm>

namespace inferd::router {

namespace {

// FNV-1a over the chunk, chained with the previous prefix's hash through a 64-bit mix.
uint64_t chain(uint64_t prev, std::string_view chunk) {
  uint64_t h = 0xcbf29ce484222325ull ^ prev;
  for (unsigned char c : chunk) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace

PrefixIndex::PrefixIndex(size_t capacity, size_t chunk_chars, size_t max_chunks)
    : capacity_(std::max<size_t>(1, capacity)),
      chunk_chars_(std::max<size_t>(1, chunk_chars)),
      max_chunks_(std::max<size_t>(1, max_chunks)) {}

size_t PrefixIndex::indexed_chars(std::string_view text) const {
  return std::min(text.size() / chunk_chars_, max_chunks_) * chunk_chars_;
}

std::vector<uint64_t> PrefixIndex::chunk_hashes(std::string_view text) const {
  const size_t n = indexed_chars(text) / chunk_chars_;
  std::vector<uint64_t> out(n);
  uint64_t h = 0;
  for (size_t i = 0; i < n; ++i) {
    h = chain(h, text.substr(i * chunk_chars_, chunk_chars_));
    out[i] = h;
  }
  return out;
}

std::vector<PrefixIndex::Match> PrefixIndex::match(std::string_view text,
                                                   const std::vector<uint32_t>& candidates) const {
  std::vector<Match> out;
  out.reserve(candidates.size());
  for (uint32_t c : candidates) out.push_back(Match{c, 0});
  if (candidates.empty()) return out;
  const std::vector<uint64_t> hashes = chunk_hashes(text);
  std::vector<bool> alive(candidates.size(), true);
  size_t num_alive = candidates.size();
  for (size_t i = 0; i < hashes.size() && num_alive > 0; ++i) {
    for (size_t k = 0; k < candidates.size(); ++k) {
      if (!alive[k]) continue;
      if (entries_.count(Key{hashes[i], candidates[k]})) {
        out[k].chars = (i + 1) * chunk_chars_;
      } else {
        alive[k] = false;
        --num_alive;
      }
    }
  }
  return out;
}

void PrefixIndex::insert(std::string_view text, uint32_t replica) {
  for (uint64_t h : chunk_hashes(text)) {
    const Key k{h, replica};
    auto it = entries_.find(k);
    if (it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      continue;
    }
    lru_.push_front(k);
    entries_.emplace(k, lru_.begin());
    per_replica_[replica]++;
    while (lru_.size() > capacity_) {
      const Key old = lru_.back();
      entries_.erase(old);
      if (--per_replica_[old.replica] == 0) per_replica_.erase(old.replica);
      lru_.pop_back();
    }
  }
}

void PrefixIndex::remove_replica(uint32_t replica) {
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->replica == replica) {
      entries_.erase(*it);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  per_replica_.erase(replica);
}

size_t PrefixIndex::chars_held(uint32_t replica) const {
  auto it = per_replica_.find(replica);
  return it == per_replica_.end() ? 0 : it->second * chunk_chars_;
}

}  // namespace inferd::router
