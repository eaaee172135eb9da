// Pixel values of the Gemma 3 and Qwen2-VL image processors against tests/data/vlm/pixels.json
// (tools/make_vlm_fixtures.py: PIL + numpy following transformers' processors step by step;
// its --reference transformers run checks that transformers agrees), max abs error <= 1e-3; and
// smart_resize and the processor settings.
#include "media/image_processor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "media/image_decode.h"
#include "media/media_test_util.h"

namespace inferd::media {
namespace {

using ::testing::HasSubstr;
using testing::read_bytes;
using testing::vlm_data;

std::vector<float> read_f32(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

TEST(ImageProcessor, MatchesTheFixtures) {
  std::ifstream f(vlm_data("pixels.json"));
  const auto m = nlohmann::json::parse(f);
  int checked = 0;
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const auto proc = image_processor_from_json(c["preprocessor_config"], name);
    const Image img = decode_image(read_bytes(vlm_data(c["image"])), name);
    const PixelValues pv = proc->preprocess(img);
    ASSERT_EQ(pv.shape, c["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(pv.grid_thw[1], c["grid_thw"][1].get<int>());
    EXPECT_EQ(pv.grid_thw[2], c["grid_thw"][2].get<int>());
    const std::vector<float> want = read_f32(vlm_data(c["file"]));
    const size_t stride = c.value("stride", 1);
    ASSERT_EQ(want.size(), (pv.data.size() + stride - 1) / stride);
    double max_err = 0;
    for (size_t i = 0; i < want.size(); ++i)
      max_err = std::max(max_err, double(std::fabs(pv.data[i * stride] - want[i])));
    EXPECT_LE(max_err, 1e-3);
    ++checked;
  }
  EXPECT_EQ(checked, 12);
}

TEST(ImageProcessor, SmartResizeAsTransformers) {
  // Values from transformers' smart_resize (factor 28).
  EXPECT_EQ(smart_resize(150, 200, 28, 3136, 12845056), std::make_pair(140, 196));
  EXPECT_EQ(smart_resize(768, 1024, 28, 3136, 12845056), std::make_pair(756, 1036));
  EXPECT_EQ(smart_resize(42, 42, 28, 3136, 12845056), std::make_pair(56, 56));  // 1.5 -> 2
  EXPECT_EQ(smart_resize(70, 70, 28, 3136, 12845056), std::make_pair(56, 56));  // 2.5 -> 2
  EXPECT_EQ(smart_resize(10, 10, 28, 3136, 12845056), std::make_pair(56, 56));
  EXPECT_EQ(smart_resize(4000, 3000, 28, 3136, 1003520), std::make_pair(1148, 840));
  EXPECT_THROW(smart_resize(10, 2100, 28, 3136, 12845056), Error);
}

void expect_config_error(const nlohmann::json& j, const std::string& needle) {
  try {
    image_processor_from_json(j, "preprocessor_config.json");
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(needle));
  }
}

TEST(ImageProcessor, RefusesWhatItDoesNotImplement) {
  expect_config_error({{"image_processor_type", "Gemma3ImageProcessor"}, {"do_pan_and_scan", true}},
                      "do_pan_and_scan");
  expect_config_error({{"image_processor_type", "CLIPImageProcessor"}},
                      "unsupported image_processor_type 'CLIPImageProcessor'");
  expect_config_error({{"image_processor_type", "Qwen2VLImageProcessor"}, {"resample", 1}},
                      "resample 1");
  expect_config_error({{"image_processor_type", "Qwen2VLImageProcessor"}, {"image_std", {1, 0, 1}}},
                      "image_std");
  expect_config_error(
      {{"image_processor_type", "Qwen2VLImageProcessor"}, {"min_pixels", 100}, {"max_pixels", 50}},
      "min_pixels 100 is more than max_pixels 50");
  expect_config_error({{"image_processor_type", "Gemma3ImageProcessor"}, {"do_convert_rgb", false}},
                      "do_convert_rgb");
}

TEST(ImageProcessor, QwenSizeObjectOverridesMinMaxPixels) {
  const auto p = image_processor_from_json(
      {{"image_processor_type", "Qwen2VLImageProcessor"},
       {"size", {{"shortest_edge", 56 * 56}, {"longest_edge", 28 * 28 * 4}}}},
      "x");
  const Image img = decode_image(read_bytes(vlm_data("photo.jpg")), "photo");
  const PixelValues pv = p->preprocess(img);
  EXPECT_LE(int64_t(pv.grid_thw[1]) * pv.grid_thw[2] * 14 * 14, 28 * 28 * 4);
}

}  // namespace
}  // namespace inferd::media
