#include <gtest/gtest.h>

#include <vector>

#include "bench/stats.h"

namespace inferd::bench {
namespace {

// Expected values are numpy.percentile's (method "linear").
TEST(Percentile, MatchesNumpyLinear) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 3.7);
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(percentile(v, 25), 1.75);
}

TEST(Percentile, UnsortedInputAndDuplicates) {
  const std::vector<double> v = {10, 0, 5, 5, 20};  // sorted: 0 5 5 10 20
  EXPECT_DOUBLE_EQ(percentile(v, 50), 5);
  EXPECT_DOUBLE_EQ(percentile(v, 75), 10);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 16);  // rank 3.6: 10 + 0.6 * 10
}

TEST(Percentile, EdgeCases) {
  EXPECT_DOUBLE_EQ(percentile(std::vector<double>{}, 50), 0);
  EXPECT_DOUBLE_EQ(percentile(std::vector<double>{7}, 1), 7);
  EXPECT_DOUBLE_EQ(percentile(std::vector<double>{7}, 99), 7);
  // 1..100: p99 = 99.01 in numpy.
  std::vector<double> h;
  for (int i = 1; i <= 100; ++i) h.push_back(i);
  EXPECT_NEAR(percentile(h, 99), 99.01, 1e-9);
  EXPECT_NEAR(percentile(h, 50), 50.5, 1e-9);
}

TEST(Summarize, MeanStdMinMaxAndPercentiles) {
  const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
  const std::vector<double> ps = {50, 90, 99};
  const Summary s = summarize(v, ps);
  EXPECT_EQ(s.count, 8u);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.stddev, 2);  // population std
  EXPECT_DOUBLE_EQ(s.min, 2);
  EXPECT_DOUBLE_EQ(s.max, 9);
  ASSERT_EQ(s.percentiles.size(), 3u);
  EXPECT_DOUBLE_EQ(s.at(50), 4.5);
  EXPECT_NEAR(s.at(90), 7.6, 1e-12);  // rank 6.3: 7 + 0.3 * 2
  EXPECT_DOUBLE_EQ(s.at(12), 0);      // not asked
}

TEST(Summarize, Empty) {
  const std::vector<double> ps = {50};
  const Summary s = summarize(std::vector<double>{}, ps);
  EXPECT_EQ(s.count, 0u);
  EXPECT_DOUBLE_EQ(s.mean, 0);
  EXPECT_DOUBLE_EQ(s.at(50), 0);
}

}  // namespace
}  // namespace inferd::bench
