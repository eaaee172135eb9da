// Idle keep-alive connections to the replicas, reused by later requests: a request through the
// router then costs no TCP handshake on the way in, and a busy router does not leave thousands of
// sockets in TIME_WAIT. Entries idle longer than `max_idle` are dropped (the replicas close idle
// connections after their keep-alive timeout, 60 s by default). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange
#include <vector>

#include <boost/beast/core/tcp_stream.hpp>

namespace inferd::router {

class UpstreamPool {
 public:
  explicit UpstreamPool(size_t max_per_replica = 256,
                        std::chrono::milliseconds max_idle = std::chrono::seconds(20))
      : max_per_replica_(max_per_replica), max_idle_(max_idle) {}

  // An idle connection to `replica`, or null.
  std::unique_ptr<boost::beast::tcp_stream> take(uint32_t replica);
  // Keeps a connection whose last response ended cleanly (no operation pending on it).
  void put(uint32_t replica, std::unique_ptr<boost::beast::tcp_stream> s);
  // Closes every idle connection to `replica` (it failed or left).
  void drop(uint32_t replica);
  // Closes the idle connections to every replica not in `replicas` (they left the table).
  void retain(const std::vector<uint32_t>& replicas);
  size_t idle(uint32_t replica) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Idle {
    std::unique_ptr<boost::beast::tcp_stream> s;
    Clock::time_point since;
  };
  size_t max_per_replica_;
  std::chrono::milliseconds max_idle_;
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, std::deque<Idle>> idle_;
};

}  // namespace inferd::router
