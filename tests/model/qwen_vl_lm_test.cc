// Qwen2_5_VLForConditionalGeneration's language side on the CPU (issue 34): the tiny model of
// tests/data/vlm/qwen25vl_lm_tiny (tools/make_qwen_vl_lm_golden.py: M-RoPE, two images in a
// 46-token prompt, float64 reference) served through the engine gives the golden prompt logprobs
// and greedy tokens within 1e-4, in one step and in chunks (the engine's M-RoPE rows), and after
// prefix-cache hits.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "inferd/engine.h"
#include "media/image_decode.h"
#include "media/image_hash.h"
#include "media/image_processor.h"
#include "model/loader/safetensors.h"
#include "model/vlm_golden_util.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

const std::string kDir = std::string(INFERD_TEST_DATA_DIR) + "/vlm/qwen25vl_lm_tiny";

class QwenVlLm : public testing_util::VlmGoldenTest {
 protected:
  QwenVlLm()
      : VlmGoldenTest(kDir, [](const media::PixelValues& pv) {
          return int32_t(pv.grid_thw[0] * pv.grid_thw[1] * pv.grid_thw[2] / 4);
        }) {}
};

TEST_F(QwenVlLm, TheModelTakesImagesWithMrope) {
  const auto m = runner(256);
  std::string why;
  ASSERT_TRUE(m->takes_images(&why)) << why;
  EXPECT_TRUE(m->uses_mrope());
  EXPECT_EQ(m->image_tokens(*pixels_of("photo.jpg")), gold_.ints("image0.tokens")[0]);
}

TEST_F(QwenVlLm, PromptWithTwoImagesMatchesTheGoldenInOneStep) {
  auto e = engine(256);
  expect_golden(e->generate({request(true)}).at(0), true);
}

TEST_F(QwenVlLm, InChunks) {
  auto e = engine(20);
  expect_golden(e->generate({request(true)}).at(0), true);
}

TEST_F(QwenVlLm, AfterPrefixCacheHits) {
  auto e = engine(256);
  expect_golden(e->generate({request(false)}).at(0), false);
  const GenerateResult again = e->generate({request(false)}).at(0);
  EXPECT_EQ(again.num_cached_tokens, 32);
  expect_golden(again, false);
}

}  // namespace
}  // namespace inferd
