#include "router/upstream_pool.h"

#include <algorithm>

namespace inferd::router {

std::unique_ptr<boost::beast::tcp_stream> UpstreamPool::take(uint32_t replica) {
  std::unique_ptr<boost::beast::tcp_stream> out;
  std::deque<Idle> stale;
  {
    std::lock_guard lk(mu_);
    auto it = idle_.find(replica);
    if (it == idle_.end()) return nullptr;
    auto& q = it->second;
    const auto now = Clock::now();
    // Most recently used first (the least likely to have been closed by the replica).
    while (!q.empty()) {
      Idle e = std::move(q.back());
      q.pop_back();
      if (now - e.since < max_idle_ && e.s->socket().is_open()) {
        out = std::move(e.s);
        break;
      }
      stale.push_back(std::move(e));
    }
    // The rest are older still.
    while (!q.empty() && now - q.front().since >= max_idle_) {
      stale.push_back(std::move(q.front()));
      q.pop_front();
    }
  }
  return out;  // `stale` closes outside the lock
}

void UpstreamPool::put(uint32_t replica, std::unique_ptr<boost::beast::tcp_stream> s) {
  s->expires_never();
  std::unique_ptr<boost::beast::tcp_stream> excess;
  std::lock_guard lk(mu_);
  auto& q = idle_[replica];
  q.push_back(Idle{std::move(s), Clock::now()});
  if (q.size() > max_per_replica_) {
    excess = std::move(q.front().s);
    q.pop_front();
  }
}

void UpstreamPool::drop(uint32_t replica) {
  std::deque<Idle> gone;
  std::lock_guard lk(mu_);
  auto it = idle_.find(replica);
  if (it != idle_.end()) {
    gone = std::move(it->second);
    idle_.erase(it);
  }
}

void UpstreamPool::retain(const std::vector<uint32_t>& replicas) {
  std::vector<std::deque<Idle>> gone;
  std::lock_guard lk(mu_);
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (std::find(replicas.begin(), replicas.end(), it->first) == replicas.end()) {
      gone.push_back(std::move(it->second));
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t UpstreamPool::idle(uint32_t replica) const {
  std::lock_guard lk(mu_);
  auto it = idle_.find(replica);
  return it == idle_.end() ? 0 : it->second.size();
}

}  // namespace inferd::router
