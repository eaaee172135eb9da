// data: URLs, base64, and which http(s) URLs are fetched (no network: the refusals only).
#include "media/image_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/error.h"

namespace inferd::media {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::string& url, const MediaFetchOptions& o = {}) {
  try {
    load_media_bytes(url, o, "messages[0].content[1].image_url.url");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ImageSource, Base64) {
  std::vector<uint8_t> out;
  ASSERT_TRUE(base64_decode("aGVsbG8=", out));
  EXPECT_EQ(std::string(out.begin(), out.end()), "hello");
  ASSERT_TRUE(base64_decode("aGVs\nbG8", out));  // whitespace, no padding
  EXPECT_EQ(std::string(out.begin(), out.end()), "hello");
  EXPECT_FALSE(base64_decode("aGV$bG8=", out));
  EXPECT_FALSE(base64_decode("aGVsbG8=QQ", out));  // data after padding
  EXPECT_FALSE(base64_decode("a", out));
}

TEST(ImageSource, DataUrls) {
  const auto b = load_media_bytes("data:image/png;base64,aGVsbG8=", {}, "x");
  EXPECT_EQ(std::string(b.begin(), b.end()), "hello");
  EXPECT_THAT(error_of("data:image/png;base64"), HasSubstr("malformed data URL"));
  EXPECT_THAT(error_of("data:image/png,hello"), HasSubstr("not base64"));
  EXPECT_THAT(error_of("data:image/png;base64,@@@"), HasSubstr("base64 data is malformed"));
  EXPECT_THAT(error_of("data:image/png;base64,"), HasSubstr("holds no data"));
  MediaFetchOptions small;
  small.max_bytes = 3;
  EXPECT_THAT(error_of("data:image/png;base64,aGVsbG8gd29ybGQ=", small),
              HasSubstr("--max-image-bytes"));
  EXPECT_THAT(error_of("data:image/png;base64,x"), HasSubstr("content[1].image_url.url"));
}

TEST(ImageSource, FileDataUrlRoundTrips) {
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/vlm/";
  for (const char* f : {"photo.jpg", "chart.png", "small.webp"}) {
    const std::string url = file_data_url(dir + f);
    EXPECT_TRUE(url.starts_with("data:image/")) << url.substr(0, 30);
    std::ifstream in(dir + f, std::ios::binary);
    const std::vector<uint8_t> want((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    EXPECT_EQ(load_media_bytes(url, {}, f), want) << f;
  }
  EXPECT_TRUE(file_data_url(dir + "photo.jpg").starts_with("data:image/jpeg;base64,/9j/"));
  EXPECT_THROW(file_data_url(dir + "pixels.json"), Error);
  EXPECT_THROW(file_data_url(dir + "no-such-file.png"), Error);
}

TEST(ImageSource, FetchRules) {
  EXPECT_THAT(error_of("https://example.com/a.png"), HasSubstr("--allowed-media-domains"));
  MediaFetchOptions o;
  o.allowed_domains = {"images.example.com", "*.cdn.example.org"};
  EXPECT_THAT(error_of("https://evil.example/a.png", o),
              HasSubstr("'evil.example' is not in --allowed-media-domains"));
  EXPECT_TRUE(host_allowed("images.example.com", o));
  EXPECT_TRUE(host_allowed("a.b.cdn.example.org", o));
  EXPECT_TRUE(host_allowed("cdn.example.org", o));
  EXPECT_FALSE(host_allowed("xcdn.example.org", o));
  EXPECT_FALSE(host_allowed("example.com", o));
  EXPECT_EQ(url_host("https://user:pw@Images.Example.com:8443/x?y"), "images.example.com");
  EXPECT_EQ(url_host("http://[::1]:80/x"), "[::1]");
  EXPECT_THAT(error_of("file:///etc/passwd", o), HasSubstr("unsupported image URL"));
  EXPECT_THAT(error_of("ftp://images.example.com/a.png", o), HasSubstr("unsupported image URL"));
}

TEST(ImageSource, FetchFailureNamesTheUrl) {
  MediaFetchOptions o;
  o.allowed_domains = {"127.0.0.1"};
  o.timeout_s = 2;
  // Port 9 (discard) on the loopback: refused at once on a machine without that service.
  EXPECT_THAT(error_of("http://127.0.0.1:9/a.png", o),
              HasSubstr("cannot fetch http://127.0.0.1:9"));
}

}  // namespace
}  // namespace inferd::media
