// The Responses API's store (`store: true`, the default): stored responses, in memory, kept for
// GET /v1/responses/{id}, DELETE and `previous_response_id`. Bounded by a count and by bytes (the
// JSON text of what an entry holds); the least recently used entries go first. Thread-safe.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace inferd::server {

struct ResponsesStoreConfig {
  size_t max_responses = 1000;          // entries; 0 turns the store off
  size_t max_bytes = size_t(64) << 20;  // JSON bytes of all entries
};

// One stored response: the response object as answered, and the conversation it continued from
// (the input items of its request, after those of the responses before it), which a later
// request with previous_response_id continues.
struct StoredResponse {
  nlohmann::ordered_json response;
  nlohmann::ordered_json input_items = nlohmann::ordered_json::array();
  size_t bytes = 0;  // set by the store
};

class ResponsesStore {
 public:
  explicit ResponsesStore(ResponsesStoreConfig config = {}) : config_(config) {}

  // Stores `r` under `id` (replacing one of the same id) and evicts the least recently used
  // entries until both bounds hold. An entry larger than max_bytes alone is not stored: returns
  // false.
  bool put(const std::string& id, StoredResponse r);
  // The entry, marked most recently used; null when absent or evicted.
  std::shared_ptr<const StoredResponse> get(const std::string& id);
  // True when it was there.
  bool erase(const std::string& id);

  size_t size() const;
  size_t bytes() const;
  bool enabled() const { return config_.max_responses > 0 && config_.max_bytes > 0; }

 private:
  using Lru = std::list<std::string>;  // most recently used first
  struct Entry {
    std::shared_ptr<const StoredResponse> value;
    Lru::iterator pos;
  };
  void evict_locked();

  ResponsesStoreConfig config_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_map<std::string, Entry> map_;
  size_t bytes_ = 0;
};

}  // namespace inferd::server
