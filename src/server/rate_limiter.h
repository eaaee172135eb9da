// Per-API-key rate limits: requests per minute and tokens per minute, as token buckets that
// refill continuously (capacity = the per-minute limit).
#pragma once

#include <chrono>
#include <cstdint>
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

}  // namespace inferd::server
