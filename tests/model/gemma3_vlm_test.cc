// Gemma3ForConditionalGeneration with images through the engine on the CPU backend (issue 34):
// tests/data/vlm/gemma3_vlm_tiny (tools/make_gemma3_vlm_golden.py: a tiny random model, two
// images in a 62-token prompt, float64 reference logits and greedy tokens) served as a user's
// request is: the prompt's logprobs and the greedy continuation match the golden within 1e-4,
// whatever the chunking (a chunk never ends inside an image) and with prefix-cache hits ending
// inside an image; another image at the same place misses the cache from its first block on.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "engine/image_spans.h"
#include "inferd/engine.h"
#include "media/image_decode.h"
#include "media/image_hash.h"
#include "media/image_processor.h"
#include "model/loader/safetensors.h"
#include "model/vlm_golden_util.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

const std::string kDir = std::string(INFERD_TEST_DATA_DIR) + "/vlm/gemma3_vlm_tiny";

class Gemma3Vlm : public testing_util::VlmGoldenTest {
 protected:
  Gemma3Vlm() : VlmGoldenTest(kDir, [](const media::PixelValues&) { return int32_t(16); }) {}
};

TEST_F(Gemma3Vlm, ImageEmbeddingsAreTheGoldenSoftTokens) {
  const auto m = runner(256);
  std::string why;
  ASSERT_TRUE(m->takes_images(&why)) << why;
  const auto pv = pixels_of("photo.jpg");
  EXPECT_EQ(m->image_tokens(*pv), 16);
  const Tensor ref = gold_.st.get("image0.soft_tokens");
  const std::vector<float> got = m->model().embed_image(*pv);
  ASSERT_EQ(got.size(), size_t(ref.numel()));
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += std::pow(got[i] - ref.data_as<float>()[i], 2);
    den += std::pow(ref.data_as<float>()[i], 2);
  }
  EXPECT_LT(std::sqrt(num / den), 1e-4);
}

TEST_F(Gemma3Vlm, PromptWithTwoImagesMatchesTheGoldenInOneStep) {
  auto e = engine(256);
  expect_golden(e->generate({request(true)}).at(0), true);
}

TEST_F(Gemma3Vlm, ChunksNeverEndInsideAnImage) {
  // 20 tokens a step: the chunk ending at 20 would cut image 0 ([9, 25)): it stops at 9, the
  // next takes the image whole.
  auto e = engine(20);
  expect_golden(e->generate({request(true)}).at(0), true);
}

TEST_F(Gemma3Vlm, PrefixCacheHitsEndingInsideAnImage) {
  auto e = engine(256);
  expect_golden(e->generate({request(false)}).at(0), false);
  // The prompt's 3 full blocks are cached: the hit (48 tokens) ends inside image 1 ([37, 53)).
  const GenerateResult again = e->generate({request(false)}).at(0);
  EXPECT_EQ(again.num_cached_tokens, 48);
  expect_golden(again, false);
  // Image 1 replaced: block 2 ([32, 48)) holds other pixels and is not reused.
  GenerateRequest other = request(false);
  other.images[1] = image_at(other.images[1].position, "photo.jpg");
  const GenerateResult o = e->generate({other}).at(0);
  EXPECT_EQ(o.num_cached_tokens, 32);
  EXPECT_NE(o.outputs.at(0).token_ids, gold_.ints("greedy.tokens"));
}

TEST_F(Gemma3Vlm, BadImagesAreInvalidRequests) {
  auto e = engine(256);
  GenerateRequest r = request(false);
  r.images[0].num_tokens = 15;
  EXPECT_THROW(e->generate({r}), InvalidRequestError);
  r = request(false);
  r.images[1].position = 20;  // overlaps image 0
  EXPECT_THROW(e->generate({r}), InvalidRequestError);
  r = request(false);
  r.images[1].position = 60;  // past the prompt
  EXPECT_THROW(e->generate({r}), InvalidRequestError);
  auto small = engine(8);  // an image takes 16 tokens: never fits one step
  EXPECT_THROW(small->generate({request(false)}), InvalidRequestError);
}

TEST(ImageSpans, CutBeforeImage) {
  std::vector<ImageInput> im(2);
  im[0].position = 10;
  im[0].num_tokens = 5;
  im[1].position = 20;
  im[1].num_tokens = 4;
  EXPECT_EQ(cut_before_image(im, 0, 8), 8);    // ends before image 0
  EXPECT_EQ(cut_before_image(im, 0, 12), 10);  // would cut image 0
  EXPECT_EQ(cut_before_image(im, 0, 15), 15);  // ends with it
  EXPECT_EQ(cut_before_image(im, 12, 2), 0);   // starts inside it, can't finish it
  EXPECT_EQ(cut_before_image(im, 12, 3), 3);
  EXPECT_EQ(cut_before_image(im, 12, 10), 8);  // stops before image 1
}

TEST(ImageSpans, ForwardBatchSpansOfAChunkStartingInsideAnImage) {
  std::vector<ImageInput> im(1);
  im[0].position = 10;
  im[0].num_tokens = 5;
  ForwardBatch fb;
  add_image_spans(fb, im, 3, 12, 20);
  ASSERT_EQ(fb.embedding_spans.size(), 1u);
  EXPECT_EQ(fb.embedding_spans[0].row, 3);
  EXPECT_EQ(fb.embedding_spans[0].num_rows, 3);
  EXPECT_EQ(fb.embedding_spans[0].offset, 2);
  EXPECT_EQ(fb.embedding_inputs.at(0).num_rows, 5);
}

}  // namespace
}  // namespace inferd
