#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "bench/http_util.h"
#include "bench/sse.h"
#include "core/error.h"

namespace inferd::bench {
namespace {

using Events = std::vector<std::pair<std::string, std::string>>;

Events parse_in_pieces(const std::string& stream, size_t piece) {
  SseParser p;
  Events ev;
  auto on = [&](std::string_view type, std::string_view data) {
    ev.emplace_back(std::string(type), std::string(data));
  };
  for (size_t i = 0; i < stream.size(); i += piece)
    p.feed(std::string_view(stream).substr(i, piece), on);
  p.finish(on);
  return ev;
}

TEST(Sse, EventsSurviveAnySplit) {
  const std::string s =
      "data: {\"a\":1}\n\n"
      ": a comment\n"
      "data: {\"b\":2}\r\n\r\n"
      "event: error\ndata: first\ndata: second\n\n"
      "data:nospace\r\rdata: [DONE]\n\n";
  const Events want = {{"", "{\"a\":1}"},
                       {"", "{\"b\":2}"},
                       {"error", "first\nsecond"},
                       {"", "nospace"},
                       {"", "[DONE]"}};
  for (size_t piece : {1u, 2u, 3u, 7u, 1000u}) EXPECT_EQ(parse_in_pieces(s, piece), want) << piece;
}

TEST(Sse, EventWithoutFinalBlankLineIsDispatchedAtFinish) {
  EXPECT_EQ(parse_in_pieces("data: x\n\ndata: tail", 4), (Events{{"", "x"}, {"", "tail"}}));
  EXPECT_EQ(parse_in_pieces("id: 3\nretry: 10\n\n", 4), Events{});  // no data: no event
}

TEST(Url, Parses) {
  Url u = parse_url("http://127.0.0.1:8000");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8000);
  EXPECT_EQ(u.path, "");
  u = parse_url("http://example.com/prefix/");
  EXPECT_EQ(u.host, "example.com");
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.path, "/prefix");
  EXPECT_EQ(u.host_header(), "example.com");
  u = parse_url("http://[::1]:9000/v");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 9000);
  EXPECT_THROW(parse_url("https://x"), Error);
  EXPECT_THROW(parse_url("127.0.0.1:8000"), Error);
  EXPECT_THROW(parse_url("http://host:99999"), Error);
  EXPECT_THROW(parse_url("http://:80"), Error);
}

}  // namespace
}  // namespace inferd::bench
