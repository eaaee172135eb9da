// ResponsesStore: an LRU map bounded by count and bytes (see responses_store.h).
#include "server/responses_store.h"

namespace inferd::server {

bool ResponsesStore::put(const std::string& id, StoredResponse r) {
  if (!enabled()) return false;
  r.bytes = id.size() + r.response.dump().size() + r.input_items.dump().size();
  std::lock_guard lk(mu_);
  if (auto it = map_.find(id); it != map_.end()) {
    bytes_ -= it->second.value->bytes;
    lru_.erase(it->second.pos);
    map_.erase(it);
  }
  if (r.bytes > config_.max_bytes) return false;
  bytes_ += r.bytes;
  lru_.push_front(id);
  map_[id] = Entry{std::make_shared<const StoredResponse>(std::move(r)), lru_.begin()};
  evict_locked();
  return true;
}

std::shared_ptr<const StoredResponse> ResponsesStore::get(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return it->second.value;
}

bool ResponsesStore::erase(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return false;
  bytes_ -= it->second.value->bytes;
  lru_.erase(it->second.pos);
  map_.erase(it);
  return true;
}

size_t ResponsesStore::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

size_t ResponsesStore::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

void ResponsesStore::evict_locked() {
  while (!lru_.empty() && (map_.size() > config_.max_responses || bytes_ > config_.max_bytes)) {
    auto it = map_.find(lru_.back());
    bytes_ -= it->second.value->bytes;
    map_.erase(it);
    lru_.pop_back();
  }
}

}  // namespace inferd::server
