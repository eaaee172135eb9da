// Image placeholders expanded as Gemma3Processor and Qwen2_5_VLProcessor do.
#include "media/image_prompt.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"

namespace inferd::media {
namespace {

PixelValues grid(int32_t t, int32_t h, int32_t w) {
  PixelValues pv;
  pv.grid_thw = {t, h, w};
  return pv;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(ImagePrompt, Gemma3) {
  const auto f = ImagePromptFormat::gemma3(3);
  const std::string got = expand_image_placeholders(
      "<start_of_turn>user\nA<start_of_image>B<start_of_image><end_of_turn>",
      {grid(1, 1, 1), grid(1, 1, 1)}, f, "messages");
  const std::string img =
      "\n\n<start_of_image>" + repeat("<image_soft_token>", 3) + "<end_of_image>\n\n";
  EXPECT_EQ(got, "<start_of_turn>user\nA" + img + "B" + img + "<end_of_turn>");
  EXPECT_EQ(ImagePromptFormat::gemma3(256).tokens_for(grid(1, 64, 64)), 256);
}

TEST(ImagePrompt, Qwen2Vl) {
  const auto f = ImagePromptFormat::qwen2_vl(2);
  // 1 x 6 x 10 patches -> 15 merged tokens; 1 x 4 x 4 -> 4.
  const std::string got = expand_image_placeholders(
      "<|vision_start|><|image_pad|><|vision_end|>x<|vision_start|><|image_pad|><|vision_end|>",
      {grid(1, 6, 10), grid(1, 4, 4)}, f, "messages");
  EXPECT_EQ(got, "<|vision_start|>" + repeat("<|image_pad|>", 15) + "<|vision_end|>x" +
                     "<|vision_start|>" + repeat("<|image_pad|>", 4) + "<|vision_end|>");
}

TEST(ImagePrompt, CountsMustAgree) {
  try {
    expand_image_placeholders("no image here", {grid(1, 1, 1)}, ImagePromptFormat::gemma3(4),
                              "messages");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("0 image placeholder(s) ('<start_of_image>') but "
                                               "the request has 1 image(s)"));
  }
  EXPECT_EQ(expand_image_placeholders("text", {}, ImagePromptFormat::qwen2_vl(2), "m"), "text");
}

}  // namespace
}  // namespace inferd::media
