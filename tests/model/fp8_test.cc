// FP8 weights (issue 13) on the CPU: the e4m3 conversions, both checkpoint layouts
// (compressed-tensors per channel / per tensor, transformers' blocks) against their dequantized
// copies made by tools/make_fp8_fixtures.py, --quantization fp8, and the errors for layouts
// inferd does not read.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/golden_util.h"
#include "model/quant/fp8_weights.h"
#include "model/quant_test_util.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

const std::string kFp8 = std::string(INFERD_TEST_DATA_DIR) + "/fp8/";
const std::string kLlama = std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3";
using testing_util::forward_all;
using testing_util::rel_err;

std::unique_ptr<ModelRunner> load(const std::string& dir, const std::string& quantization = "") {
  return testing_util::cpu_runner(dir, quantization, 64, 256);
}
using testing_util::error_of;

TEST(Fp8, E4m3ConversionsAreExactAndRoundToNearestEven) {
  for (int c = 0; c < 256; ++c) {
    const float v = f8e4m3_to_f32(uint8_t(c));
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(v)) << c;
      continue;
    }
    if (c == 0x80) continue;  // -0 encodes as +0's sign-preserving twin: checked below
    EXPECT_EQ(f32_to_f8e4m3(v), uint8_t(c)) << c << " " << v;
  }
  EXPECT_EQ(f32_to_f8e4m3(-0.0f), 0x80);
  EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f32_to_f8e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(f32_to_f8e4m3(-465.0f), 0xfe);
  EXPECT_EQ(f32_to_f8e4m3(1.0625f), 0x38);        // tie between 1 and 1.125: even mantissa (1)
  EXPECT_EQ(f32_to_f8e4m3(1.1875f), 0x3a);        // tie between 1.125 and 1.25: 1.25
  EXPECT_EQ(f32_to_f8e4m3(0.0009765625f), 0x00);  // half the smallest subnormal: to 0
  EXPECT_EQ(f32_to_f8e4m3(0.0029296875f), 0x02);  // 1.5 subnormal steps: to 2
  EXPECT_EQ(f8e4m3_to_f32(0x01), 0.001953125f);
}

class Fp8Layouts : public ::testing::TestWithParam<std::string> {};

// The FP8 checkpoint and the same weights dequantized by the fixture script give the same logits
// (the CPU dequantizes at load) and the same greedy tokens.
TEST_P(Fp8Layouts, LoadsAndMatchesItsDequantizedCopy) {
  auto q = load(kFp8 + GetParam());
  auto d = load(kFp8 + GetParam() + "_dequant");
  EXPECT_NE(q->config().quant.method, QuantMethod::kNone);
  EXPECT_EQ(d->config().quant.method, QuantMethod::kNone);
  const std::vector<std::vector<int32_t>> prompts = {{5, 17, 200, 3, 99, 41, 7}, {12, 250}};
  const auto lq = forward_all(*q, prompts, 64), ld = forward_all(*d, prompts, 64);
  for (size_t s = 0; s < prompts.size(); ++s)
    EXPECT_LT(rel_err(lq[s].data(), ld[s].data(), ld[s].size()), 1e-6) << GetParam();
  EXPECT_EQ(greedy_generate(*q, prompts[0], 8, 64), greedy_generate(*d, prompts[0], 8, 64));
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, Fp8Layouts,
                         ::testing::Values("llama3_ct_channel", "llama3_ct_tensor",
                                           "llama3_fp8_block"));

// --quantization fp8 rounds every linear weight to FP8 per output channel: the logits move by
// about FP8's precision and no more.
TEST(Fp8, QuantizationFlagRoundsWeightsPerChannel) {
  auto base = load(kLlama);
  auto q = load(kLlama, "fp8");
  const std::vector<std::vector<int32_t>> prompts = {{5, 17, 200, 3, 99, 41, 7, 8, 9, 10}};
  const auto lb = forward_all(*base, prompts, 64), lq = forward_all(*q, prompts, 64);
  const double err = rel_err(lq[0].data(), lb[0].data(), lb[0].size());
  EXPECT_GT(err, 1e-4);  // really quantized
  EXPECT_LT(err, 0.1);
  EXPECT_NE(error_of([&] { load(kLlama, "int4"); }).find("unsupported --quantization 'int4'"),
            std::string::npos);
  // Quantizing one weight: every element within half an e4m3 step of the original.
  Tensor w = Tensor::empty_host(DType::kF32, {3, 5});
  for (int i = 0; i < 15; ++i) w.data_as<float>()[i] = std::sin(float(i) * 1.3f) * float(i + 1);
  const Fp8Weight f = quantize_fp8_per_channel(w);
  const Tensor back = dequantize_fp8(f);
  for (int n = 0; n < 3; ++n) {
    float amax = 0;
    for (int k = 0; k < 5; ++k) amax = std::max(amax, std::fabs(w.data_as<float>()[n * 5 + k]));
    EXPECT_FLOAT_EQ(f.channel_scale[size_t(n)], amax / 448.0f);
    for (int k = 0; k < 5; ++k) {
      const float x = w.data_as<float>()[n * 5 + k], y = back.data_as<float>()[n * 5 + k];
      EXPECT_LE(std::fabs(x - y), std::fabs(x) / 16 + 1e-6f) << n << " " << k;
    }
  }
}

TEST(Fp8, UnsupportedQuantizationConfigsAreNamed) {
  nlohmann::json base =
      nlohmann::json::parse(std::ifstream(kFp8 + "llama3_ct_channel/config.json"));
  auto perr = [](const nlohmann::json& j) {
    return error_of([&] { parse_model_config(j.dump(), "config.json"); });
  };
  auto j = base;
  j["quantization_config"]["quant_method"] = "bitsandbytes";
  EXPECT_NE(perr(j).find("quant_method 'bitsandbytes' is not supported"), std::string::npos)
      << perr(j);
  j = base;
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 4;
  EXPECT_NE(perr(j).find("only num_bits 8"), std::string::npos) << perr(j);
  j = base;
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["strategy"] = "group";
  EXPECT_NE(perr(j).find("weights.strategy 'group' is not supported"), std::string::npos)
      << perr(j);
  j = base;
  j["quantization_config"]["kv_cache_scheme"] = {{"num_bits", 8}};
  EXPECT_NE(perr(j).find("kv_cache_scheme: only an 8-bit float"), std::string::npos) << perr(j);
  // llm-compressor's FP8 KV cache scheme: static per-tensor scales (used by --kv-cache-dtype fp8).
  j["quantization_config"]["kv_cache_scheme"] = {{"num_bits", 8},
                                                 {"type", "float"},
                                                 {"strategy", "tensor"},
                                                 {"dynamic", false},
                                                 {"symmetric", true}};
  EXPECT_EQ(perr(j), "<no error>");
  j["quantization_config"]["kv_cache_scheme"]["strategy"] = "channel";
  EXPECT_NE(perr(j).find("kv_cache_scheme.strategy \"channel\" is not supported"),
            std::string::npos)
      << perr(j);
  j["quantization_config"]["kv_cache_scheme"]["strategy"] = "tensor";
  j["quantization_config"]["kv_cache_scheme"]["dynamic"] = true;
  EXPECT_NE(perr(j).find("kv_cache_scheme.dynamic true is not supported"), std::string::npos)
      << perr(j);
  j = nlohmann::json::parse(std::ifstream(kFp8 + "llama3_fp8_block/config.json"));
  j["quantization_config"]["activation_scheme"] = "static";
  EXPECT_NE(perr(j).find("activation_scheme 'static'"), std::string::npos) << perr(j);
  j["quantization_config"]["activation_scheme"] = "dynamic";
  j["quantization_config"].erase("weight_block_size");
  EXPECT_NE(perr(j).find("weight_block_size"), std::string::npos) << perr(j);
}

TEST(Fp8, FloatEightWeightWithoutQuantizationConfigIsAnError) {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("inferd_fp8_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(kFp8 + "llama3_ct_channel/config.json"));
  j.erase("quantization_config");
  std::ofstream(tmp / "config.json") << j.dump();
  fs::create_symlink(fs::absolute(kFp8 + "llama3_ct_channel/model.safetensors"),
                     tmp / "model.safetensors");
  const std::string e = error_of([&] { load(tmp.string()); });
  fs::remove_all(tmp);
  EXPECT_NE(e.find("is float8 but config.json has no quantization_config"), std::string::npos) << e;
}

}  // namespace
}  // namespace inferd
