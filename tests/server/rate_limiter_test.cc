#include "server/rate_limiter.h"

#include <gtest/gtest.h>

namespace inferd::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RateLimiter, DisabledAdmitsEverything) {
  RateLimiter rl(0, 0);
  EXPECT_FALSE(rl.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(rl.admit("k", 1'000'000).allowed);
}

TEST(RateLimiter, RequestsPerMinuteRefillContinuously) {
  RateLimiter rl(6, 0);  // one request per 10 s
  auto t = RateLimiter::Clock::now();
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(rl.admit("a", 0, t).allowed);
  auto v = rl.admit("a", 0, t);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.kind, "requests");
  EXPECT_NEAR(v.retry_after_s, 10.0, 1e-6);
  EXPECT_FALSE(rl.admit("a", 0, t + seconds(9)).allowed);
  EXPECT_TRUE(rl.admit("a", 0, t + seconds(10)).allowed);
  // Another key is independent.
  EXPECT_TRUE(rl.admit("b", 0, t).allowed);
}

TEST(RateLimiter, TokensPerMinuteCountPromptAndCompletion) {
  RateLimiter rl(0, 600);  // 10 tokens/s
  auto t = RateLimiter::Clock::now();
  EXPECT_TRUE(rl.admit("k", 400, t).allowed);
  rl.charge("k", 150, t);  // completion: 50 left
  auto v = rl.admit("k", 100, t);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.kind, "tokens");
  EXPECT_NEAR(v.retry_after_s, 5.0, 1e-6);
  EXPECT_TRUE(rl.admit("k", 100, t + milliseconds(5000)).allowed);
  // A request larger than the whole budget waits for a full bucket, then passes once.
  RateLimiter big(0, 60);
  EXPECT_TRUE(big.admit("k", 1000, t).allowed);
  EXPECT_FALSE(big.admit("k", 1000, t + seconds(60)).allowed);  // went to -940
}

}  // namespace
}  // namespace inferd::server
