// Decoding JPEG, PNG and WebP as PIL does (convert("RGB")), and the errors for files that are
// not images, corrupt, truncated, unsupported or too large.
#include "media/image_decode.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "media/media_test_util.h"

namespace inferd::media {
namespace {

using ::testing::HasSubstr;
using testing::read_bytes;
using testing::vlm_data;

// Every committed image decodes to the bytes PIL gave (their FNV-1a hash in pixels.json).
TEST(ImageDecode, MatchesPilOnEveryTestImage) {
  std::ifstream f(vlm_data("pixels.json"));
  const auto m = nlohmann::json::parse(f);
  int checked = 0;
  for (const auto& c : m["cases"]) {
    const std::string name = c["image"];
    SCOPED_TRACE(name);
    const Image img = decode_image(read_bytes(vlm_data(name)), name);
    EXPECT_EQ(img.width, c["rgb_size"][0].get<int>());
    EXPECT_EQ(img.height, c["rgb_size"][1].get<int>());
    EXPECT_EQ(testing::fnv1a(img.rgb), c["rgb_fnv1a"].get<std::string>());
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

TEST(ImageDecode, SniffsFormats) {
  EXPECT_EQ(sniff_format(read_bytes(vlm_data("photo.jpg"))), ImageFormat::kJpeg);
  EXPECT_EQ(sniff_format(read_bytes(vlm_data("chart.png"))), ImageFormat::kPng);
  EXPECT_EQ(sniff_format(read_bytes(vlm_data("small.webp"))), ImageFormat::kWebp);
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0};
  EXPECT_EQ(sniff_format(gif), ImageFormat::kGif);
}

void expect_error(const std::vector<uint8_t>& bytes, const std::string& needle,
                  const DecodeLimits& lim = {}) {
  try {
    decode_image(bytes, "messages[0].content[1]", lim);
    ADD_FAILURE() << "no error for " << needle;
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("messages[0].content[1]"));
    EXPECT_THAT(e.what(), HasSubstr(needle));
  }
}

TEST(ImageDecode, RejectsBadInput) {
  expect_error({}, "no known format");
  expect_error({'h', 'e', 'l', 'l', 'o'}, "no known format");
  expect_error({'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0}, "GIF images are not supported");
  expect_error(read_bytes(vlm_data("truncated.jpg")), "corrupt JPEG");
  std::vector<uint8_t> png = read_bytes(vlm_data("chart.png"));
  png.resize(png.size() / 2);
  expect_error(png, "corrupt PNG");
  std::vector<uint8_t> png_bad = read_bytes(vlm_data("chart.png"));
  png_bad[png_bad.size() / 2] ^= 0x5a;  // a CRC mismatch in IDAT
  expect_error(png_bad, "corrupt PNG");
  std::vector<uint8_t> webp = read_bytes(vlm_data("small.webp"));
  webp.resize(40);
  expect_error(webp, "corrupt WebP");
  // Only a JPEG's first bytes: the header cannot be read.
  expect_error({0xFF, 0xD8, 0xFF, 0xE0, 0, 16}, "corrupt JPEG");
}

TEST(ImageDecode, PixelLimitIsCheckedBeforeDecoding) {
  DecodeLimits lim;
  lim.max_pixels = 200 * 150 - 1;
  expect_error(read_bytes(vlm_data("photo.jpg")), "200x150 = 30000 pixels", lim);
  expect_error(read_bytes(vlm_data("photo.jpg")), "--max-image-pixels", lim);
  lim.max_pixels = 100;
  expect_error(read_bytes(vlm_data("chart.png")), "more than the limit of 100", lim);
  expect_error(read_bytes(vlm_data("small.webp")), "more than the limit of 100", lim);
  lim.max_pixels = 200 * 150;
  EXPECT_EQ(decode_image(read_bytes(vlm_data("photo.jpg")), "x", lim).width, 200);
}

}  // namespace
}  // namespace inferd::media
