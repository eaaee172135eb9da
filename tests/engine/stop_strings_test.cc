#include "engine/stop_strings.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

TEST(StopStrings, NoStopsPassesThrough) {
  StopStringMatcher m;
  std::string out;
  EXPECT_FALSE(m.push("abc", out));
  EXPECT_EQ(out, "abc");
}

TEST(StopStrings, HoldsBackOnlyWhatCouldStillMatch) {
  const std::vector<std::string> stops = {"STOP"};
  StopStringMatcher m(stops, false);
  std::string out;
  EXPECT_FALSE(m.push("hello S", out));
  EXPECT_EQ(out, "hello ");
  EXPECT_FALSE(m.push("T", out));
  EXPECT_EQ(out, "hello ");
  EXPECT_FALSE(m.push("x", out));  // "STx" cannot become STOP any more
  EXPECT_EQ(out, "hello STx");
  EXPECT_FALSE(m.push("ST", out));
  const auto hit = m.push("OP and more", out);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, 0u);
  EXPECT_EQ(out, "hello STx");
}

TEST(StopStrings, EarliestMatchWinsAndIncludeOption) {
  const std::vector<std::string> stops = {"bc", "abcd", "b"};
  StopStringMatcher m(stops, false);
  std::string out;
  const auto hit = m.push("xxabcd", out);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, 1u);  // "abcd" starts first
  EXPECT_EQ(out, "xx");
  StopStringMatcher inc(stops, true);
  std::string out2;
  EXPECT_FALSE(inc.push("xa", out2));
  EXPECT_EQ(out2, "x");
  const auto hit2 = inc.push("bq", out2);
  ASSERT_TRUE(hit2);
  EXPECT_EQ(*hit2, 2u);
  EXPECT_EQ(out2, "xab");
}

TEST(StopStrings, FlushReturnsHeldText) {
  const std::vector<std::string> stops = {"\xE2\x82\xAC!"};  // "€!"
  StopStringMatcher m(stops, false);
  std::string out;
  EXPECT_FALSE(m.push("price \xE2\x82\xAC", out));
  EXPECT_EQ(out, "price ");
  EXPECT_EQ(m.flush(), "\xE2\x82\xAC");
}

}  // namespace
}  // namespace inferd
