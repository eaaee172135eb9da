// What the vision-language golden tests share (gemma3_vlm_test, qwen_vl_lm_test): a tiny model
// of tests/data/vlm/ with its golden.safetensors (prompt ids, reference logits, greedy tokens,
// image positions; tools/make_gemma3_vlm_golden.py, tools/make_qwen_vl_lm_golden.py), the
// request of its prompt with its two images, and the check of a result against the golden.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "inferd/engine.h"
#include "media/image_decode.h"
#include "media/image_hash.h"
#include "media/image_processor.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"

namespace inferd::testing_util {

struct VlmGolden {
  explicit VlmGolden(const std::string& dir)
      : st(SafetensorsIndex::open_file(dir + "/golden.safetensors")) {}
  SafetensorsIndex st;
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

// A fixture over the model in `dir`; `tokens_of` is the number of prompt tokens an image takes.
class VlmGoldenTest : public ::testing::Test {
 protected:
  VlmGoldenTest(std::string dir, std::function<int32_t(const media::PixelValues&)> tokens_of)
      : dir_(std::move(dir)), tokens_of_(std::move(tokens_of)), gold_(dir_) {}

  // tests/data/vlm/FILE as the model's image processor makes it.
  std::shared_ptr<const media::PixelValues> pixels_of(const std::string& file) const {
    std::ifstream f(std::string(INFERD_TEST_DATA_DIR) + "/vlm/" + file, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                     std::istreambuf_iterator<char>());
    const auto proc = media::load_image_processor(dir_);
    return std::make_shared<const media::PixelValues>(
        proc->preprocess(media::decode_image(bytes, file, {})));
  }
  ImageInput image_at(int32_t pos, const std::string& file) const {
    ImageInput in;
    in.position = pos;
    in.pixels = pixels_of(file);
    in.num_tokens = tokens_of_(*in.pixels);
    in.hash = media::image_hash(*in.pixels);
    return in;
  }
  std::shared_ptr<ModelRunner> runner(int32_t batched) const {
    RunnerOptions o;
    o.num_kv_blocks = 64;
    o.block_size = 16;
    o.max_num_batched_tokens = batched;
    return std::make_shared<ModelRunner>(dir_, o, make_cpu_backend(2));
  }
  std::unique_ptr<Engine> engine(int32_t batched) const {
    EngineConfig ec;
    ec.max_num_batched_tokens = batched;
    ec.max_num_seqs = 4;
    return std::make_unique<Engine>(runner(batched), ec);
  }
  // The golden prompt with its two images (photo.jpg, chart.png), 12 greedy tokens.
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
  // The greedy tokens equal the golden's; the first one's logprob and (when asked) every prompt
  // logprob within 1e-4 of the reference.
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

  std::string dir_;
  std::function<int32_t(const media::PixelValues&)> tokens_of_;
  VlmGolden gold_;
};

}  // namespace inferd::testing_util
