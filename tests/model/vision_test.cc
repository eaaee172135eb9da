// The vision towers on the CPU. Gemma 3's vision side against tests/data/vlm/gemma3_tiny
// (tools/make_vlm_goldens.py: its own float64 implementation; transformers confirms it on the GPU
// machine): each committed test image decoded and preprocessed (preprocessor_config.json), then the
// SigLIP tower's last_hidden_state and the projector's soft tokens, relative error under 1e-4.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "media/image_decode.h"
#include "media/image_processor.h"
#include "model/loader/safetensors.h"
#include "model/vision/mrope_positions.h"
#include "model/vision/qwen2_5_vl_vision.h"
#include "model/vision/siglip.h"

namespace inferd {
namespace {

const std::string kDir = std::string(INFERD_TEST_DATA_DIR) + "/vlm/gemma3_tiny";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

double rel_err(const std::vector<float>& got, const Tensor& want) {
  EXPECT_EQ(int64_t(got.size()), want.numel());
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.numel() && i < int64_t(got.size()); ++i) {
    const double d = double(got[size_t(i)]) - want.data_as<const float>()[i];
    num += d * d;
    den += double(want.data_as<const float>()[i]) * want.data_as<const float>()[i];
  }
  return std::sqrt(num / den);
}

TEST(Gemma3Vision, MatchesTheGoldens) {
  const nlohmann::json cfg = read_json(kDir + "/config.json");
  const SiglipVisionConfig vc =
      SiglipVisionConfig::parse(cfg["vision_config"], "config.json: vision_config");
  const SafetensorsIndex st = SafetensorsIndex::open_file(kDir + "/model.safetensors");
  const SiglipVisionTower tower(vc, st, "vision_tower.vision_model.");
  const Gemma3Projector proj(vc, cfg["mm_tokens_per_image"].get<int64_t>(),
                             cfg["text_config"]["hidden_size"].get<int64_t>(), st,
                             "multi_modal_projector.");
  EXPECT_EQ(proj.tokens(), 4);
  const auto processor = media::load_image_processor(kDir);
  const SafetensorsIndex gold = SafetensorsIndex::open_file(kDir + "/golden.safetensors");
  const auto images = read_json(kDir + "/golden.json")["images"];
  ASSERT_EQ(images.size(), 2u);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string name = images[i];
    SCOPED_TRACE(name);
    const std::string key = "image" + std::to_string(i);
    const media::Image img =
        media::decode_image(read_bytes(std::string(INFERD_TEST_DATA_DIR) + "/vlm/" + name), name);
    const media::PixelValues pv = processor->preprocess(img);
    EXPECT_LT(rel_err(pv.data, gold.get(key + ".pixel_values")), 1e-6);
    const std::vector<float> vo = tower.forward(pv.data);
    EXPECT_LT(rel_err(vo, gold.get(key + ".vision_out")), 1e-4);
    const std::vector<float> soft = proj.forward(vo);
    EXPECT_LT(rel_err(soft, gold.get(key + ".soft_tokens")), 1e-4);
  }
}

TEST(Gemma3Vision, ConfigErrorsNameTheKey) {
  auto err = [](const nlohmann::json& j) {
    try {
      SiglipVisionConfig::parse(j, "vision_config");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  using ::testing::HasSubstr;
  EXPECT_THAT(err({{"hidden_act", "relu"}}), HasSubstr("hidden_act 'relu'"));
  EXPECT_THAT(err({{"vision_use_head", true}}), HasSubstr("vision_use_head"));
  EXPECT_THAT(err({{"image_size", 100}, {"patch_size", 14}}), HasSubstr("not a multiple"));
  EXPECT_THAT(err({{"hidden_size", 30}, {"num_attention_heads", 4}}), HasSubstr("hidden_size 30"));
  EXPECT_THAT(err({{"num_hidden_layers", 0}}), HasSubstr("num_hidden_layers"));
}

TEST(Gemma3Vision, MissingWeightIsAnError) {
  const nlohmann::json cfg = read_json(kDir + "/config.json");
  const SiglipVisionConfig vc = SiglipVisionConfig::parse(cfg["vision_config"], "vc");
  const SafetensorsIndex st = SafetensorsIndex::open_file(kDir + "/model.safetensors");
  EXPECT_THROW(SiglipVisionTower(vc, st, "model.vision_tower.vision_model."), Error);
  EXPECT_THROW(Gemma3Projector(vc, 9, 40, st, "multi_modal_projector."), Error);  // 3 !| 4
}

// Qwen2.5-VL's tower against tests/data/vlm/qwen25vl_tiny (tools/make_qwen_vl_goldens.py): the
// two images' grids (6x10, 6x8 patches) have partial windows; block 1 attends fully.
TEST(Qwen25VlVision, MatchesTheGoldens) {
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/vlm/qwen25vl_tiny";
  const nlohmann::json cfg = read_json(dir + "/config.json");
  const Qwen25VlVisionConfig vc =
      Qwen25VlVisionConfig::parse(cfg["vision_config"], "config.json: vision_config");
  const SafetensorsIndex st = SafetensorsIndex::open_file(dir + "/model.safetensors");
  const Qwen25VlVisionTower tower(vc, st, "visual.");
  const auto processor = media::load_image_processor(dir);
  const SafetensorsIndex gold = SafetensorsIndex::open_file(dir + "/golden.safetensors");
  const auto images = read_json(dir + "/golden.json")["images"];
  ASSERT_EQ(images.size(), 2u);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string name = images[i];
    SCOPED_TRACE(name);
    const std::string key = "image" + std::to_string(i);
    const media::PixelValues pv = processor->preprocess(
        media::decode_image(read_bytes(std::string(INFERD_TEST_DATA_DIR) + "/vlm/" + name), name));
    const Tensor grid = gold.get(key + ".grid_thw");
    for (int d = 0; d < 3; ++d) EXPECT_EQ(pv.grid_thw[size_t(d)], grid.data_as<const int32_t>()[d]);
    const std::vector<float> emb = tower.forward(pv.data, pv.grid_thw);
    EXPECT_LT(rel_err(emb, gold.get(key + ".embeds")), 1e-4);
  }
}

TEST(Qwen25VlVision, ConfigAndInputErrors) {
  using ::testing::HasSubstr;
  auto err = [](const nlohmann::json& j) {
    try {
      Qwen25VlVisionConfig::parse(j, "vision_config");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_THAT(err({{"hidden_act", "gelu"}}), HasSubstr("hidden_act 'gelu'"));
  EXPECT_THAT(err({{"depth", 2}, {"fullatt_block_indexes", {0, 5}}}), HasSubstr("below depth 2"));
  EXPECT_THAT(err({{"hidden_size", 40}, {"num_heads", 4}}), HasSubstr("multiple of 4"));
  EXPECT_THAT(err({{"window_size", 100}}), HasSubstr("window_size 100"));
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/vlm/qwen25vl_tiny";
  const Qwen25VlVisionConfig vc =
      Qwen25VlVisionConfig::parse(read_json(dir + "/config.json")["vision_config"], "vc");
  const SafetensorsIndex st = SafetensorsIndex::open_file(dir + "/model.safetensors");
  const Qwen25VlVisionTower tower(vc, st, "visual.");
  EXPECT_THROW(tower.forward(std::vector<float>(10), {1, 2, 2}), Error);
  EXPECT_THROW(tower.forward(std::vector<float>(1176 * 3), {1, 1, 3}), Error);
  EXPECT_THROW(Qwen25VlVisionTower(vc, st, "model.visual."), Error);
}

// get_rope_index's positions, worked by hand: a, b, <|vision_start|> are text 0..2; a 1x4x6
// grid (merge 2: 2 x 3 tokens) takes (3, 3 + row, 3 + column); <|vision_end|>, c follow at 6, 7.
TEST(Mrope, PositionsAndDelta) {
  constexpr int32_t kImg = 99;
  const std::vector<int32_t> toks = {1, 2, 7, kImg, kImg, kImg, kImg, kImg, kImg, 8, 3};
  const std::array<int32_t, 3> grid{1, 4, 6};
  const MropePositions p = mrope_positions(toks, kImg, std::span(&grid, 1), 2);
  EXPECT_EQ(p.ids[0], (std::vector<int32_t>{0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7}));
  EXPECT_EQ(p.ids[1], (std::vector<int32_t>{0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7}));
  EXPECT_EQ(p.ids[2], (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7}));
  EXPECT_EQ(p.rope_delta, 8 - 11);
  // Text only: positions 0..n-1 in all three, delta 0.
  const std::vector<int32_t> text = {5, 6, 7};
  const MropePositions q = mrope_positions(text, kImg, {}, 2);
  EXPECT_EQ(q.ids[1], (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(q.rope_delta, 0);
  // Two images back to back need two grids; a run of the wrong length is an error.
  const std::vector<int32_t> two = {kImg, kImg, kImg, kImg, kImg, kImg,
                                    kImg, kImg, kImg, kImg, kImg, kImg};
  EXPECT_THROW(mrope_positions(two, kImg, std::span(&grid, 1), 2), Error);
  const std::vector<int32_t> short_run = {1, kImg, kImg, 2};
  EXPECT_THROW(mrope_positions(short_run, kImg, std::span(&grid, 1), 2), Error);
  EXPECT_THROW(mrope_positions(text, kImg, std::span(&grid, 1), 2), Error);
}

}  // namespace
}  // namespace inferd
