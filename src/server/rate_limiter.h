// Per-API-key limits: requests per minute and tokens per minute, as token buckets that refill
// continuously (capacity = the per-minute limit); and requests in flight at once (a slot per
// request, given back when the request ends however it ends).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace inferd::server {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // 0 disables a limit.
  RateLimiter(int64_t requests_per_minute, int64_t tokens_per_minute);

  bool enabled() const { return rpm_ > 0 || tpm_ > 0; }

  struct Verdict {
    bool allowed = true;
    double retry_after_s = 0;  // when not allowed: seconds until it would be
    std::string kind;          // "requests" or "tokens"
  };
  // Admits one request that brings `tokens` (its prompt) and charges for it when allowed.
  // A request bigger than the whole token budget is admitted only when the bucket is full.
  Verdict admit(const std::string& key, int64_t tokens, Clock::time_point now = Clock::now());
  // Charges tokens after the fact (the completion); the bucket may go below zero.
  void charge(const std::string& key, int64_t tokens, Clock::time_point now = Clock::now());

 private:
  struct Bucket {
    double requests = 0;
    double tokens = 0;
    Clock::time_point last;
  };
  Bucket& bucket(const std::string& key, Clock::time_point now);
  void refill(Bucket& b, Clock::time_point now) const;

  int64_t rpm_, tpm_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

// At most `max_per_key` requests of one key in flight at once.
class ConcurrencyLimiter {
 public:
  // 0 disables the limit.
  explicit ConcurrencyLimiter(int64_t max_per_key);

  bool enabled() const { return max_ > 0; }
  int64_t max_per_key() const { return max_; }

  // A request's place under its key's limit while the Slot lives (move-only; may outlive the
  // limiter). An empty Slot (refused, or the limit off) holds nothing.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept;
    Slot& operator=(Slot&& o) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    explicit operator bool() const { return state_ != nullptr; }
    void release();

   private:
    friend class ConcurrencyLimiter;
    struct State;
    Slot(std::shared_ptr<State> state, std::string key)
        : state_(std::move(state)), key_(std::move(key)) {}
    std::shared_ptr<State> state_;
    std::string key_;
  };

  // A slot of `key`; `refused` is set (and the Slot empty) when the key has max_per_key in
  // flight already. With the limit off: an empty Slot, never refused.
  Slot try_acquire(const std::string& key, bool& refused);
  // Requests of `key` in flight now.
  int64_t in_flight(const std::string& key) const;

 private:
  int64_t max_;
  std::shared_ptr<Slot::State> state_;
};

}  // namespace inferd::server
