#include "server/rate_limiter.h"

#include <algorithm>

namespace inferd::server {

RateLimiter::RateLimiter(int64_t requests_per_minute, int64_t tokens_per_minute)
    : rpm_(std::max<int64_t>(0, requests_per_minute)),
      tpm_(std::max<int64_t>(0, tokens_per_minute)) {}

void RateLimiter::refill(Bucket& b, Clock::time_point now) const {
  const double dt = std::chrono::duration<double>(now - b.last).count();
  if (dt <= 0) return;
  b.last = now;
  if (rpm_ > 0) b.requests = std::min(double(rpm_), b.requests + dt * double(rpm_) / 60.0);
  if (tpm_ > 0) b.tokens = std::min(double(tpm_), b.tokens + dt * double(tpm_) / 60.0);
}

RateLimiter::Bucket& RateLimiter::bucket(const std::string& key, Clock::time_point now) {
  auto it = buckets_.find(key);
  if (it != buckets_.end()) {
    refill(it->second, now);
    return it->second;
  }
  if (buckets_.size() >= 100000) {
    // Forget keys whose buckets are full again (they behave exactly like new ones).
    for (auto i = buckets_.begin(); i != buckets_.end();) {
      refill(i->second, now);
      const bool full = (rpm_ == 0 || i->second.requests >= double(rpm_)) &&
                        (tpm_ == 0 || i->second.tokens >= double(tpm_));
      i = full ? buckets_.erase(i) : std::next(i);
    }
  }
  Bucket b;
  b.requests = double(rpm_);
  b.tokens = double(tpm_);
  b.last = now;
  return buckets_.emplace(key, b).first->second;
}

RateLimiter::Verdict RateLimiter::admit(const std::string& key, int64_t tokens,
                                        Clock::time_point now) {
  Verdict v;
  if (!enabled()) return v;
  std::lock_guard lk(mu_);
  Bucket& b = bucket(key, now);
  if (rpm_ > 0 && b.requests < 1.0) {
    v.allowed = false;
    v.kind = "requests";
    v.retry_after_s = (1.0 - b.requests) * 60.0 / double(rpm_);
    return v;
  }
  if (tpm_ > 0) {
    const double need = std::min(double(tokens), double(tpm_));
    if (b.tokens < need) {
      v.allowed = false;
      v.kind = "tokens";
      v.retry_after_s = (need - b.tokens) * 60.0 / double(tpm_);
      return v;
    }
  }
  if (rpm_ > 0) b.requests -= 1.0;
  if (tpm_ > 0) b.tokens -= double(tokens);
  return v;
}

void RateLimiter::charge(const std::string& key, int64_t tokens, Clock::time_point now) {
  if (tpm_ == 0 || tokens <= 0) return;
  std::lock_guard lk(mu_);
  bucket(key, now).tokens -= double(tokens);
}

// ---- ConcurrencyLimiter ------------------------------------------------------------------------

struct ConcurrencyLimiter::Slot::State {
  std::mutex mu;
  std::unordered_map<std::string, int64_t> in_flight;  // keys with requests in flight only
};

ConcurrencyLimiter::ConcurrencyLimiter(int64_t max_per_key)
    : max_(std::max<int64_t>(0, max_per_key)), state_(std::make_shared<Slot::State>()) {}

ConcurrencyLimiter::Slot ConcurrencyLimiter::try_acquire(const std::string& key, bool& refused) {
  refused = false;
  if (max_ == 0) return {};
  std::lock_guard lk(state_->mu);
  int64_t& n = state_->in_flight[key];
  if (n >= max_) {
    refused = true;
    return {};
  }
  ++n;
  return Slot(state_, key);
}

int64_t ConcurrencyLimiter::in_flight(const std::string& key) const {
  std::lock_guard lk(state_->mu);
  auto it = state_->in_flight.find(key);
  return it == state_->in_flight.end() ? 0 : it->second;
}

ConcurrencyLimiter::Slot::Slot(Slot&& o) noexcept
    : state_(std::move(o.state_)), key_(std::move(o.key_)) {
  o.state_ = nullptr;
}

ConcurrencyLimiter::Slot& ConcurrencyLimiter::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    release();
    state_ = std::move(o.state_);
    key_ = std::move(o.key_);
    o.state_ = nullptr;
  }
  return *this;
}

void ConcurrencyLimiter::Slot::release() {
  if (!state_) return;
  {
    std::lock_guard lk(state_->mu);
    auto it = state_->in_flight.find(key_);
    if (it != state_->in_flight.end() && --it->second <= 0) state_->in_flight.erase(it);
  }
  state_ = nullptr;
}

}  // namespace inferd::server
