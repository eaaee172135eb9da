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
#include "runner/model_runner.h"

namespace inferd {
namespace {

const std::string kDir = std::string(INFERD_TEST_DATA_DIR) + "/vlm/qwen25vl_lm_tiny";

std::shared_ptr<const media::PixelValues> pixels_of(const std::string& file) {
  std::ifstream f(std::string(INFERD_TEST_DATA_DIR) + "/vlm/" + file, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                   std::istreambuf_iterator<char>());
  const auto proc = media::load_image_processor(kDir);
  return std::make_shared<const media::PixelValues>(
      proc->preprocess(media::decode_image(bytes, file, {})));
}

ImageInput image_at(int32_t pos, const std::string& file) {
  ImageInput in;
  in.position = pos;
  in.pixels = pixels_of(file);
  in.num_tokens =
      int32_t(in.pixels->grid_thw[0] * in.pixels->grid_thw[1] * in.pixels->grid_thw[2] / 4);
  in.hash = media::image_hash(*in.pixels);
  return in;
}

struct Golden {
  SafetensorsIndex st = SafetensorsIndex::open_file(kDir + "/golden.safetensors");
  std::vector<int32_t> ints(const std::string& name) const {
    const Tensor t = st.get(name);
    return {t.data_as<int32_t>(), t.data_as<int32_t>() + t.numel()};
  }
  // log_softmax(logits[p])[id] of the reference.
  double logprob(int64_t p, int32_t id) const {
    const Tensor t = st.get("prompt.logits");
    const int64_t V = t.size(1);
    const float* row = t.data_as<float>() + p * V;
    double mx = row[0], sum = 0;
    for (int64_t i = 0; i < V; ++i) mx = std::max<double>(mx, row[i]);
    for (int64_t i = 0; i < V; ++i) sum += std::exp(double(row[i]) - mx);
    return double(row[id]) - mx - std::log(sum);
  }
};

class QwenVlLm : public ::testing::Test {
 protected:
  std::shared_ptr<ModelRunner> runner(int32_t batched) {
    RunnerOptions o;
    o.num_kv_blocks = 64;
    o.block_size = 16;
    o.max_num_batched_tokens = batched;
    return std::make_shared<ModelRunner>(kDir, o, make_cpu_backend(2));
  }
  std::unique_ptr<Engine> engine(int32_t batched) {
    EngineConfig ec;
    ec.max_num_batched_tokens = batched;
    ec.max_num_seqs = 4;
    return std::make_unique<Engine>(runner(batched), ec);
  }
  GenerateRequest request(bool prompt_logprobs) const {
    GenerateRequest r;
    r.prompt_token_ids = gold_.ints("prompt.ids");
    r.images = {image_at(gold_.ints("image0.position")[0], "photo.jpg"),
                image_at(gold_.ints("image1.position")[0], "chart.png")};
    r.params.temperature = 0;
    r.params.max_tokens = 12;
    r.params.logprobs = 0;
    if (prompt_logprobs) r.params.prompt_logprobs = 0;
    return r;
  }
  void expect_golden(const GenerateResult& res, bool prompt_logprobs) const {
    ASSERT_TRUE(res.error.empty()) << res.error;
    const std::vector<int32_t> ids = gold_.ints("prompt.ids");
    EXPECT_EQ(res.outputs.at(0).token_ids, gold_.ints("greedy.tokens"));
    // The first sampled token's logprob comes from the prompt's last row.
    EXPECT_NEAR(res.outputs[0].logprobs.at(0).logprob,
                gold_.logprob(int64_t(ids.size()) - 1, res.outputs[0].token_ids[0]), 1e-4);
    if (!prompt_logprobs) return;
    ASSERT_EQ(res.prompt_logprobs.size(), ids.size() - 1);
    double worst = 0;
    for (size_t p = 0; p + 1 < ids.size(); ++p)
      worst = std::max(
          worst, std::abs(res.prompt_logprobs[p].logprob - gold_.logprob(int64_t(p), ids[p + 1])));
    EXPECT_LT(worst, 1e-4);
  }
  Golden gold_;
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
