// gpt-oss (issue 27) pieces the goldens do not isolate: the MXFP4 code table, nibble order and
// scales (the layout of the published checkpoints), the MoE routing of the CPU reference (top-k
// then softmax, softmax then top-k with renormalisation, ties), attention sinks on a hand-made
// case, GptOssConfig's defaults and the errors of a malformed config; the published gpt-oss-20b
// shape under --load-format dummy (dense experts on the CPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/moe.h"
#include "core/error.h"
#include "model/config.h"
#include "model/loader/safetensors.h"
#include "model/quant/mxfp4.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

using json = nlohmann::json;

TEST(Mxfp4, CodeTable) {
  const float want[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  for (uint8_t c = 0; c < 16; ++c) EXPECT_EQ(mxfp4_value(c), want[c]) << int(c);
  EXPECT_TRUE(std::signbit(mxfp4_value(8)));
}

TEST(Mxfp4, NibbleOrderAndScales) {
  // One row of 64 values: two groups. Byte i of a group holds element 2i (low nibble) and 2i + 1.
  std::vector<uint8_t> blocks(32, 0), scales = {127 + 1, 127 - 3};
  blocks[0] = 0x2F;   // element 0 = code F (-6), element 1 = code 2 (1.0)
  blocks[15] = 0x70;  // element 30 = 0, element 31 = 6
  blocks[16] = 0x19;  // group 1: element 32 = code 9 (-0.5), element 33 = code 1 (0.5)
  std::vector<uint16_t> out(64);
  dequantize_mxfp4(blocks.data(), scales.data(), 1, 64, out.data());
  EXPECT_EQ(bf16_to_f32(out[0]), -12.0f);  // * 2^1
  EXPECT_EQ(bf16_to_f32(out[1]), 2.0f);
  EXPECT_EQ(bf16_to_f32(out[30]), 0.0f);
  EXPECT_EQ(bf16_to_f32(out[31]), 12.0f);
  EXPECT_EQ(bf16_to_f32(out[32]), -0.0625f);  // * 2^-3
  EXPECT_EQ(bf16_to_f32(out[33]), 0.0625f);
  EXPECT_EQ(bf16_to_f32(out[63]), 0.0f);
  // The extremes of e8m0 stay exact in bf16 (subnormal at the bottom).
  std::vector<uint8_t> b1(16, 0x11), s1 = {0};
  std::vector<uint16_t> o1(32);
  dequantize_mxfp4(b1.data(), s1.data(), 1, 32, o1.data());
  EXPECT_EQ(bf16_to_f32(o1[0]), std::ldexp(0.5f, -127));
}

// Routes one row of logits through the unified op (KernelOps::moe_topk's CPU reference).
void route(const std::vector<float>& logits, const MoeRouting& r, int32_t* ids, float* w) {
  Tensor l = Tensor::empty_host(DType::kF32, {1, int64_t(logits.size())});
  std::copy(logits.begin(), logits.end(), l.data_as<float>());
  Tensor ti(ids, DType::kI32, {1, int64_t(r.top_k)}, Device::kCPU);
  Tensor tw(w, DType::kF32, {1, int64_t(r.top_k)}, Device::kCPU);
  cpu::moe_topk(l, r, ti, tw);
}

TEST(MoeRoute, TopKThenSoftmax) {
  const MoeRouting r{5, 3, /*softmax_before_topk=*/false, /*renormalize=*/false};  // gpt-oss
  int32_t ids[3];
  float w[3];
  route({0.5f, 2.0f, -1.0f, 2.0f, 1.0f}, r, ids, w);
  EXPECT_EQ(ids[0], 1);  // a tie: the lower index first
  EXPECT_EQ(ids[1], 3);
  EXPECT_EQ(ids[2], 4);
  const double z = 2 * std::exp(0.0) + std::exp(-1.0);
  EXPECT_NEAR(w[0], 1 / z, 1e-6);
  EXPECT_NEAR(w[2], std::exp(-1.0) / z, 1e-6);
}

TEST(MoeRoute, SoftmaxThenTopKWithAndWithoutRenormalisation) {
  const std::vector<float> logits = {0.0f, 1.0f, 3.0f, 2.0f};
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  MoeRouting r{4, 2, /*softmax_before_topk=*/true, /*renormalize=*/false};
  int32_t ids[2];
  float w[2];
  route(logits, r, ids, w);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 3);
  EXPECT_NEAR(w[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(w[1], std::exp(2.0) / z, 1e-6);
  r.renormalize = true;
  route(logits, r, ids, w);
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-6);
  EXPECT_NEAR(w[0], 1 / (1 + std::exp(-1.0)), 1e-6);
}

// One head, two keys: the sink adds exp(sink) to the denominator and nothing to the output.
TEST(AttentionSinks, JoinTheSoftmaxDenominator) {
  auto be = make_cpu_backend(1);
  const int64_t hd = 8, bs = 16;
  Tensor kc = Tensor::empty_host(DType::kF32, {1, bs, 1, hd});
  Tensor vc = Tensor::empty_host(DType::kF32, {1, bs, 1, hd});
  Tensor qkv = Tensor::empty_host(DType::kF32, {2, 3 * hd});
  for (int64_t i = 0; i < 2 * 3 * hd; ++i) qkv.data_as<float>()[i] = 0.1f * float(i % 7) - 0.3f;
  ForwardBatch fb;
  fb.token_ids = {1, 2};
  fb.positions = {0, 1};
  SeqBatchInfo si;
  si.q_len = 2;
  si.kv_len = 2;
  si.num_blocks = 1;
  fb.seqs = {si};
  fb.block_tables = {0};
  fb.logit_rows = {1};
  const DeviceBatch& b = be->prepare_batch(fb, int32_t(bs));
  KvLayer kv{kc, vc};
  be->write_kv(qkv, 1, 1, kv, b);
  Tensor plain = Tensor::empty_host(DType::kF32, {2, hd});
  Tensor sunk = Tensor::empty_host(DType::kF32, {2, hd});
  Tensor sinks = Tensor::empty_host(DType::kF32, {1});
  sinks.data_as<float>()[0] = 0.7f;
  be->attention(qkv, 1, 1, kv, 0.5f, 0, b, plain);
  be->attention(qkv, 1, 1, kv, 0.5f, 0, b, sunk, sinks);
  // Row 1 sees keys 0 and 1: scores s_j; with the sink the weights shrink by
  // sum(e^s) / (sum(e^s) + e^sink).
  const float* q = qkv.data_as<float>() + 3 * hd;
  double s[2], sum = 0;
  for (int j = 0; j < 2; ++j) {
    double d = 0;
    for (int64_t i = 0; i < hd; ++i) d += double(q[i]) * qkv.data_as<float>()[j * 3 * hd + hd + i];
    s[j] = std::exp(0.5 * d);
    sum += s[j];
  }
  const double shrink = sum / (sum + std::exp(0.7));
  for (int64_t i = 0; i < hd; ++i)
    EXPECT_NEAR(sunk.data_as<float>()[hd + i], plain.data_as<float>()[hd + i] * shrink, 1e-6);
}

json gpt_oss_base() {
  return {{"architectures", {"GptOssForCausalLM"}},
          {"model_type", "gpt_oss"},
          {"hidden_size", 64},
          {"intermediate_size", 64},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"num_local_experts", 8},
          {"vocab_size", 100}};
}

std::string error_of(const json& j) {
  try {
    parse_model_config(j.dump(), "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(GptOssConfig, TransformersDefaults) {
  const ModelConfig c = parse_model_config(gpt_oss_base().dump(), "config.json");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_TRUE(c.qkv_bias && c.o_bias && c.attention_sinks);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.sliding_window, 128);
  EXPECT_EQ(c.window_of(0), 128);
  EXPECT_EQ(c.window_of(1), 0);
  EXPECT_EQ(c.window_of(2), 128);
  EXPECT_EQ(c.rope.type, RopeType::kYarn);
  EXPECT_DOUBLE_EQ(c.rope.theta, 150000.0);
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  EXPECT_EQ(c.rope.original_max_position, 4096);
  EXPECT_FALSE(c.rope.truncate);
  EXPECT_EQ(c.quant.method, QuantMethod::kNone);
}

TEST(GptOssConfig, PublishedShapeAndMxfp4) {
  const ModelConfig c =
      load_model_config(std::string(INFERD_SOURCE_DIR) + "/models/configs/gpt-oss-20b");
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.num_experts, 32);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.quant.method, QuantMethod::kMxfp4);
  EXPECT_EQ(c.window_of(22), 128);
  EXPECT_EQ(c.window_of(23), 0);
  EXPECT_DOUBLE_EQ(c.swiglu_limit, 7.0);
}

TEST(GptOssConfig, Errors) {
  json j = gpt_oss_base();
  j["num_experts_per_tok"] = 9;
  EXPECT_NE(error_of(j).find("num_experts_per_tok"), std::string::npos) << error_of(j);
  j = gpt_oss_base();
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_act"), std::string::npos);
  j = gpt_oss_base();
  j["layer_types"] = {"sliding_attention", "full_attention"};
  EXPECT_NE(error_of(j).find("layer_types"), std::string::npos);
  j = gpt_oss_base();
  j["sliding_window"] = nullptr;
  EXPECT_NE(error_of(j).find("sliding_window"), std::string::npos);
  j = gpt_oss_base();
  j["quantization_config"] = {{"quant_method", "mxfp8"}};
  EXPECT_NE(error_of(j).find("mxfp4"), std::string::npos) << error_of(j);
}

// The MXFP4 golden model with one expert tensor missing, or stored in the wrong dtype: the load
// stops with an error naming the tensor.
std::string load_error_with(const std::string& drop, const std::string& as_float) {
  namespace fs = std::filesystem;
  const std::string src = std::string(INFERD_TEST_DATA_DIR) + "/goldens/gpt_oss_mxfp4";
  const std::string dir = (fs::temp_directory_path() / "inferd_gpt_oss_bad").string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir + "/config.json");
  const auto st = SafetensorsIndex::open_file(src + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, info] : st.tensors()) {
    if (name == drop) continue;
    Tensor t = st.get(name);
    if (name == as_float) {
      Tensor f = Tensor::empty_host(DType::kF32, t.shape());
      for (int64_t i = 0; i < t.numel(); ++i)
        f.data_as<float>()[i] = float(t.data_as<uint8_t>()[i]);
      t = f;
    }
    tensors.emplace_back(name, t);
  }
  write_safetensors(dir + "/model.safetensors", tensors);
  std::string err = "<no error>";
  try {
    RunnerOptions o;
    o.num_kv_blocks = 8;
    ModelRunner m(dir, o, make_cpu_backend(1));
  } catch (const Error& e) {
    err = e.what();
  }
  fs::remove_all(dir);
  return err;
}

TEST(GptOssLoad, BadMxfp4TensorsNameThemselves) {
  const std::string b = "model.layers.1.mlp.experts.down_proj_blocks";
  const std::string s = "model.layers.0.mlp.experts.gate_up_proj_scales";
  std::string e = load_error_with(b, "");
  EXPECT_NE(e.find(b), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  e = load_error_with("", s);
  EXPECT_NE(e.find(s), std::string::npos) << e;
  EXPECT_NE(e.find("uint8"), std::string::npos) << e;
}

}  // namespace
}  // namespace inferd
