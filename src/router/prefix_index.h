// The router's approximate radix tree: which replica probably holds which prompt prefix in its KV
// cache. A prompt's text is cut into fixed-size chunks of characters; chunk i is keyed by a hash
// chained over chunks 0..i (so a key stands for a whole prefix, as the engine's block hashes do).
// Each (key, replica) pair is an entry with a last-use time; beyond `capacity` entries the least
// recently used ones go, as a replica's own cache would evict them. Not thread-safe (the router
// guards it with its table's mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace inferd::router {

class PrefixIndex {
 public:
  // `chunk_chars`: characters per chunk (about a KV block of tokens); `max_chunks`: how many
  // leading chunks of a prompt are looked at; `capacity`: most (prefix, replica) entries kept.
  explicit PrefixIndex(size_t capacity = size_t(1) << 18, size_t chunk_chars = 64,
                       size_t max_chunks = 512);

  struct Match {
    uint32_t replica = 0;
    size_t chars = 0;  // leading characters that replica holds (a multiple of chunk_chars)
  };
  // For each of `candidates`, how many leading characters of `text` it is believed to hold; one
  // Match per candidate, in the candidates' order.
  std::vector<Match> match(std::string_view text, const std::vector<uint32_t>& candidates) const;
  // Records that `replica` now holds `text`'s prefix (every whole chunk), most recently used.
  void insert(std::string_view text, uint32_t replica);
  // Forgets everything `replica` held (it restarted or left).
  void remove_replica(uint32_t replica);

  // Characters of prefixes that `replica` is believed to hold (entries x chunk size).
  size_t chars_held(uint32_t replica) const;
  size_t size() const { return lru_.size(); }
  size_t chunk_chars() const { return chunk_chars_; }
  // Characters of `text` that count (whole chunks, at most max_chunks of them).
  size_t indexed_chars(std::string_view text) const;

 private:
  struct Key {
    uint64_t hash;
    uint32_t replica;
    bool operator==(const Key& o) const { return hash == o.hash && replica == o.replica; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return size_t(k.hash ^ (uint64_t(k.replica) << 56)); }
  };
  std::vector<uint64_t> chunk_hashes(std::string_view text) const;

  size_t capacity_, chunk_chars_, max_chunks_;
  std::list<Key> lru_;  // front: most recently used
  std::unordered_map<Key, std::list<Key>::iterator, KeyHash> entries_;
  std::unordered_map<uint32_t, size_t> per_replica_;
};

}  // namespace inferd::router
