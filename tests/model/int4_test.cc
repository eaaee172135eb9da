// Integer weight-only checkpoints (issue 28) on the CPU: AWQ, GPTQ (v1 / v2, act-order, 4 and 8
// bits, per channel) and compressed-tensors pack-quantized fixtures made by
// tools/make_int4_fixtures.py against their expected logits (the float64 reference on the
// dequantized weights), the packing rules on hand-made words, the canonical int4 repack, and the
// errors for variants inferd does not read and for a --quantization that does not match.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "model/quant/int_weights.h"
#include "model/quant_test_util.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

const std::string kInt4 = std::string(INFERD_TEST_DATA_DIR) + "/int4/";
using testing_util::forward_all;
using testing_util::rel_err;

std::unique_ptr<ModelRunner> load(const std::string& dir, const std::string& quantization = "") {
  return testing_util::cpu_runner(dir, quantization, 32, 64);
}
using testing_util::error_of;

class Int4Fixtures : public ::testing::TestWithParam<std::string> {};

// Every fixture's logits (prompts run in chunks of 5 tokens) within 1e-4 of the expected ones.
TEST_P(Int4Fixtures, LogitsMatchTheReferenceOnTheDequantizedWeights) {
  const std::string dir = kInt4 + GetParam();
  auto m = load(dir);
  EXPECT_NE(m->config().quant.method, QuantMethod::kNone);
  const SafetensorsIndex g = SafetensorsIndex::open_file(dir + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; g.contains("prompt" + std::to_string(i) + ".ids"); ++i)
    prompts.push_back(testing_util::ints(g.get("prompt" + std::to_string(i) + ".ids")));
  ASSERT_EQ(prompts.size(), 2u);
  const auto logits = forward_all(*m, prompts, 5);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Tensor want = g.get("prompt" + std::to_string(i) + ".logits");
    ASSERT_EQ(size_t(want.numel()), logits[i].size());
    EXPECT_LT(rel_err(logits[i].data(), want.data_as<float>(), logits[i].size()), 1e-4)
        << GetParam() << " prompt " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, Int4Fixtures,
                         ::testing::Values("awq_g32", "awq_g64", "gptq_g32_actorder",
                                           "gptq_g64_sym", "gptq_channel_v2", "gptq_8bit_g32",
                                           "ct_group_actorder", "ct_channel_asym"));

// One AWQ linear of 8 outputs and 32 inputs written by hand: output o's code at input i is
// (o + i) % 16, packed in AWQ's nibble order; zero points 8 - o / 2; scales 0.5.
TEST(Int4, AwqNibbleOrderUnpacksAsPublished) {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("inferd_awq_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  Tensor qw = Tensor::empty_host(DType::kI32, {32, 1});
  Tensor qz = Tensor::empty_host(DType::kI32, {1, 1});
  Tensor sc = Tensor::empty_host(DType::kF32, {1, 8});
  for (int i = 0; i < 32; ++i)
    for (int n = 0; n < 8; ++n)
      qw.data_as<uint32_t>()[i] |= uint32_t((kOrder[n] + i) % 16) << (4 * n);
  for (int n = 0; n < 8; ++n) {
    qz.data_as<uint32_t>()[0] |= uint32_t(8 - kOrder[n] / 2) << (4 * n);
    sc.data_as<float>()[n] = 0.5f;
  }
  write_safetensors((tmp / "w.safetensors").string(),
                    {{"l.qweight", qw}, {"l.qzeros", qz}, {"l.scales", sc}});
  const SafetensorsIndex st = SafetensorsIndex::open_file((tmp / "w.safetensors").string());
  QuantConfig qc;
  qc.method = QuantMethod::kAwq;
  qc.bits = 4;
  qc.group_size = 32;
  const IntQuantWeight w = make_awq_method()->read_part(st, "l", 8, 32, qc);
  const Tensor d = dequantize_int_weight(w);
  for (int o = 0; o < 8; ++o)
    for (int i = 0; i < 32; ++i)
      EXPECT_EQ(d.data_as<float>()[o * 32 + i], (float((o + i) % 16) - float(8 - o / 2)) * 0.5f)
          << o << " " << i;
  fs::remove_all(tmp);
}

// The canonical int4 repack: act-order inputs sorted by group, codes in that order, and the
// dequantized canonical weight equal to the dequantized original.
TEST(Int4, CanonicalRepackSortsActOrderGroups) {
  IntQuantWeight w;
  w.rows = 3;
  w.cols = 16;
  w.group_size = 8;
  w.q.resize(48);
  for (size_t i = 0; i < 48; ++i) w.q[i] = uint8_t((i * 7 + 3) % 16);
  w.scales = {0.5f, 0.25f, 1.0f, 2.0f, 0.125f, 0.75f};
  w.zeros = {8, 7, 9, 1, 15, 0};
  w.g_idx.resize(16);
  for (int c = 0; c < 16; ++c) w.g_idx[size_t(c)] = (c * 5 % 16) < 8 ? 1 : 0;
  Int4Linear l;
  ASSERT_TRUE(pack_int4_linear(std::span(&w, 1), &l));
  ASSERT_TRUE(l.perm.defined());
  const Tensor ref = dequantize_int_weight(w);
  const int32_t* perm = l.perm.data_as<int32_t>();
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t j = 0; j < 16; ++j) {
      const uint32_t q = (l.qweight.data_as<uint32_t>()[n * 2 + j / 8] >> (4 * (j % 8))) & 15u;
      const int64_t g = j / 8;
      const float v =
          (float(q) - l.zeros.data_as<float>()[g * 3 + n]) * l.scales.data_as<float>()[g * 3 + n];
      EXPECT_EQ(v, ref.data_as<float>()[n * 16 + perm[j]]) << n << " " << j;
    }
  // Groups of unequal size cannot be made contiguous groups of group_size: not packed.
  w.g_idx[0] = 1 - w.g_idx[0];
  EXPECT_FALSE(pack_int4_linear(std::span(&w, 1), &l));
}

nlohmann::json config_of(const std::string& fixture) {
  return nlohmann::json::parse(std::ifstream(kInt4 + fixture + "/config.json"));
}

std::string parse_error(const nlohmann::json& j) {
  return error_of([&] { parse_model_config(j.dump(), "config.json"); });
}

TEST(Int4, UnsupportedVariantsNameTheField) {
  auto j = config_of("awq_g32");
  j["quantization_config"]["version"] = "gemv";
  EXPECT_NE(parse_error(j).find("quantization_config.version 'gemv'"), std::string::npos)
      << parse_error(j);
  j = config_of("awq_g32");
  j["quantization_config"]["bits"] = 3;
  EXPECT_NE(parse_error(j).find("quantization_config.bits 3"), std::string::npos);
  j = config_of("awq_g32");
  j["quantization_config"]["group_size"] = 96;
  EXPECT_NE(parse_error(j).find("group_size 96 is not supported"), std::string::npos);
  j = config_of("awq_g32");
  j["quantization_config"]["zero_point"] = false;
  EXPECT_NE(parse_error(j).find("zero_point = false"), std::string::npos);
  j = config_of("gptq_g64_sym");
  j["quantization_config"]["bits"] = 2;
  EXPECT_NE(parse_error(j).find("quantization_config.bits 2"), std::string::npos);
  j = config_of("gptq_g64_sym");
  j["quantization_config"]["checkpoint_format"] = "marlin";
  EXPECT_NE(parse_error(j).find("checkpoint_format 'marlin'"), std::string::npos);
  j = config_of("gptq_g64_sym");
  j["quantization_config"]["lm_head"] = true;
  EXPECT_NE(parse_error(j).find("lm_head = true"), std::string::npos);
  j = config_of("ct_channel_asym");
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 2;
  EXPECT_NE(parse_error(j).find("num_bits 4 or 8"), std::string::npos) << parse_error(j);
  j = config_of("ct_channel_asym");
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["strategy"] = "tensor";
  EXPECT_NE(parse_error(j).find("weights.strategy 'tensor'"), std::string::npos);
  j = config_of("ct_channel_asym");
  j["quantization_config"]["config_groups"]["group_0"]["input_activations"] = {{"num_bits", 8}};
  EXPECT_NE(parse_error(j).find("input_activations is not supported"), std::string::npos);
  j = config_of("awq_g32");
  j["quantization_config"]["quant_method"] = "exl2";
  EXPECT_NE(parse_error(j).find("quant_method 'exl2' is not supported"), std::string::npos);
}

TEST(Int4, QuantizationFlagMustMatchTheCheckpoint) {
  EXPECT_NO_THROW(load(kInt4 + "awq_g32", "awq"));
  EXPECT_NO_THROW(load(kInt4 + "gptq_g64_sym", "gptq_marlin"));
  EXPECT_NO_THROW(load(kInt4 + "ct_channel_asym", "compressed-tensors"));
  const std::string e = error_of([&] { load(kInt4 + "awq_g32", "gptq"); });
  EXPECT_NE(e.find("--quantization gptq does not match the checkpoint's "
                   "quantization_config.quant_method 'awq'"),
            std::string::npos)
      << e;
  const std::string none =
      error_of([&] { load(std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3", "awq"); });
  EXPECT_NE(none.find("has no quantization_config"), std::string::npos) << none;
  const std::string fp8 = error_of([&] { load(kInt4 + "awq_g32", "fp8"); });
  EXPECT_NE(fp8.find("does not apply to a awq checkpoint"), std::string::npos) << fp8;
  EXPECT_EQ(describe_quantization(load(kInt4 + "gptq_g32_actorder")->config().quant, ""),
            "gptq (4-bit, group 32, act-order, asymmetric)");
}

// --load-format dummy with an int4 config: the CPU (no int4 kernels) draws dense weights and runs.
TEST(Int4, DummyWeightsLoadAndRun) {
  RunnerOptions o;
  o.num_kv_blocks = 8;
  o.block_size = 16;
  o.max_num_batched_tokens = 16;
  o.load.format = LoadFormat::kDummy;
  ModelRunner m(kInt4 + "gptq_g32_actorder", o, make_cpu_backend(1));
  const auto logits = forward_all(m, {{1, 2, 3}}, 16);
  ASSERT_EQ(logits[0].size(), size_t(3 * m.vocab_size()));
  for (float v : logits[0]) ASSERT_TRUE(std::isfinite(v));
}

// A missing tensor of a quantized linear is an error naming it.
TEST(Int4, MissingTensorIsNamed) {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("inferd_int4_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  fs::copy_file(kInt4 + "awq_g32/config.json", tmp / "config.json");
  const SafetensorsIndex st = SafetensorsIndex::open_file(kInt4 + "awq_g32/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> keep;
  for (const auto& [name, info] : st.tensors())
    if (name != "model.layers.1.mlp.down_proj.qzeros") keep.emplace_back(name, st.get(name));
  write_safetensors((tmp / "model.safetensors").string(), keep);
  const std::string e = error_of([&] { load(tmp.string()); });
  fs::remove_all(tmp);
  EXPECT_NE(e.find("model.layers.1.mlp.down_proj.qzeros' is missing"), std::string::npos) << e;
}

}  // namespace
}  // namespace inferd
