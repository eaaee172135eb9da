// Mixture-of-experts models (issue 27) beyond the goldens: the other checkpoint layout of each
// family gives the golden logits (Mixtral's published per-expert block_sparse_moe.experts.<e>.
// w1/w3/w2, Qwen3-MoE stacked as transformers 5 saves it), the config checks, the expert-load
// profile and the active-weights footprint.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "model/weight_footprint.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
const std::string kGoldens = testing_util::goldens_dir();

// A host copy of rows [r0, r1) of expert e of a stacked [E, R, C] tensor.
Tensor expert_rows(const Tensor& a, int64_t e, int64_t r0, int64_t r1) {
  Tensor o = Tensor::empty_host(a.dtype(), {r1 - r0, a.size(2)});
  const size_t es = dtype_size(a.dtype());
  std::memcpy(o.data(),
              static_cast<const char*>(a.data()) + size_t((e * a.size(1) + r0) * a.size(2)) * es,
              o.nbytes());
  return o;
}

// The golden model `name` with its checkpoint rewritten by `convert` into a temporary directory.
class Relayout {
 public:
  Relayout(const std::string& name,
           const std::function<void(const std::string&, const Tensor&,
                                    std::vector<std::pair<std::string, Tensor>>&)>& convert)
      : dir_(fs::temp_directory_path() / ("inferd_moe_" + std::to_string(::getpid()) + name)) {
    fs::create_directories(dir_);
    fs::copy_file(kGoldens + name + "/config.json", dir_ / "config.json");
    const SafetensorsIndex st = SafetensorsIndex::open_file(kGoldens + name + "/model.safetensors");
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& [n, info] : st.tensors()) convert(n, st.get(n), out);
    write_safetensors((dir_ / "model.safetensors").string(), out);
  }
  ~Relayout() { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_;
};

std::vector<std::vector<float>> golden_logits(const std::string& dir, const std::string& name,
                                              std::vector<std::vector<float>>* ref) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  ModelRunner m(dir, o, make_cpu_backend(2));
  const auto gold = SafetensorsIndex::open_file(kGoldens + name + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    prompts.push_back(testing_util::ints(gold.get("prompt" + std::to_string(i) + ".ids")));
    const Tensor l = gold.get("prompt" + std::to_string(i) + ".logits");
    ref->emplace_back(l.data_as<float>(), l.data_as<float>() + l.numel());
  }
  return testing_util::forward_all(m, prompts, 64);
}

void expect_golden(const std::string& dir, const std::string& name) {
  std::vector<std::vector<float>> ref;
  const auto got = golden_logits(dir, name, &ref);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LT(testing_util::rel_err(got[i].data(), ref[i].data(), got[i].size()), 1e-4)
        << name << " prompt " << i;
}

TEST(MoeModels, MixtralPerExpertCheckpointGivesTheGoldenLogits) {
  // The golden is stacked under mlp. (transformers 5); the published layout is per expert under
  // block_sparse_moe. with w1 (gate), w3 (up), w2 (down).
  Relayout r("mixtral", [](const std::string& n, const Tensor& t, auto& out) {
    const auto p = n.find(".mlp.");
    if (p == std::string::npos) {
      out.push_back({n, t});
      return;
    }
    const std::string layer = n.substr(0, p) + ".block_sparse_moe.";
    if (n.ends_with("mlp.gate.weight")) {
      out.push_back({layer + "gate.weight", t});
    } else if (n.ends_with("gate_up_proj")) {
      const int64_t F = t.size(1) / 2;
      for (int64_t e = 0; e < t.size(0); ++e) {
        const std::string x = layer + "experts." + std::to_string(e) + ".";
        out.push_back({x + "w1.weight", expert_rows(t, e, 0, F)});
        out.push_back({x + "w3.weight", expert_rows(t, e, F, 2 * F)});
      }
    } else {
      for (int64_t e = 0; e < t.size(0); ++e)
        out.push_back({layer + "experts." + std::to_string(e) + ".w2.weight",
                       expert_rows(t, e, 0, t.size(1))});
    }
  });
  expect_golden(r.dir(), "mixtral");
}

TEST(MoeModels, Qwen3MoeStackedCheckpointGivesTheGoldenLogits) {
  // The golden is per expert (the published layout); transformers 5 saves experts stacked.
  const SafetensorsIndex st = SafetensorsIndex::open_file(kGoldens + "qwen3_moe/model.safetensors");
  Relayout r("qwen3_moe", [&](const std::string& n, const Tensor& t, auto& out) {
    const auto p = n.find(".mlp.experts.");
    if (p == std::string::npos) {
      out.push_back({n, t});
      return;
    }
    if (!n.ends_with(".0.gate_proj.weight")) return;  // each layer once, from expert 0
    const std::string x = n.substr(0, p) + ".mlp.experts.";
    int64_t E = 0;
    while (st.contains(x + std::to_string(E) + ".gate_proj.weight")) ++E;
    const int64_t F = t.size(0), H = t.size(1);
    Tensor w13 = Tensor::empty_host(DType::kF32, {E, 2 * F, H});
    Tensor w2 = Tensor::empty_host(DType::kF32, {E, H, F});
    for (int64_t e = 0; e < E; ++e) {
      const std::string pe = x + std::to_string(e) + ".";
      std::memcpy(w13.data_as<float>() + e * 2 * F * H, st.get(pe + "gate_proj.weight").data(),
                  size_t(F * H) * 4);
      std::memcpy(w13.data_as<float>() + (e * 2 + 1) * F * H, st.get(pe + "up_proj.weight").data(),
                  size_t(F * H) * 4);
      std::memcpy(w2.data_as<float>() + e * H * F, st.get(pe + "down_proj.weight").data(),
                  size_t(H * F) * 4);
    }
    out.push_back({x + "gate_up_proj", w13});
    out.push_back({x + "down_proj", w2});
  });
  expect_golden(r.dir(), "qwen3_moe");
}

std::string error_of(const std::string& arch_json) {
  try {
    parse_model_config(arch_json, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string qwen3_moe(const std::string& extra) {
  return R"({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
    "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 320)" +
         extra + "}";
}

TEST(MoeModels, ConfigKeysAreReadAndChecked) {
  const ModelConfig c = parse_model_config(
      qwen3_moe(R"(, "num_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 32,
      "decoder_sparse_step": 2, "mlp_only_layers": [3], "norm_topk_prob": true)"),
      "config.json");
  EXPECT_EQ(c.num_experts, 16);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.moe_intermediate_size, 32);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.layer_sparse, (std::vector<uint8_t>{0, 1, 0, 0}));  // (i + 1) % 2, not layer 3
  // transformers' Qwen3MoeConfig defaults: 128 experts, 8 a token, 768, no renormalisation.
  const ModelConfig d = parse_model_config(qwen3_moe(""), "config.json");
  EXPECT_EQ(d.num_experts, 128);
  EXPECT_EQ(d.num_experts_per_tok, 8);
  EXPECT_EQ(d.moe_intermediate_size, 768);
  EXPECT_FALSE(d.norm_topk_prob);
  EXPECT_NE(error_of(qwen3_moe(R"(, "num_experts": 4, "num_experts_per_tok": 5)"))
                .find("num_experts_per_tok 5 of num_experts 4"),
            std::string::npos);
  EXPECT_NE(error_of(qwen3_moe(R"(, "mlp_only_layers": [4])")).find("mlp_only_layers entry 4"),
            std::string::npos);
  EXPECT_NE(error_of(qwen3_moe(R"(, "decoder_sparse_step": 0)")).find("decoder_sparse_step"),
            std::string::npos);
  const ModelConfig m = parse_model_config(
      R"({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 64,
      "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "vocab_size": 320})",
      "config.json");
  EXPECT_EQ(m.num_experts, 8);
  EXPECT_EQ(m.num_experts_per_tok, 2);
  EXPECT_EQ(m.moe_intermediate_size, 48);
  EXPECT_EQ(m.sliding_window, 0);  // MixtralConfig: none unless set
  EXPECT_EQ(m.layer_sparse, (std::vector<uint8_t>{1, 1}));
}

TEST(MoeModels, ActiveWeightsOfTheQwen3_30B_A3BShape) {
  const ModelConfig c =
      load_model_config(std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen3-30b-a3b");
  const WeightFootprint f = weight_footprint(c, weight_bits(c.quant, ""));
  // 48 layers: attention 18.9M, router 0.26M, experts 128 x 4.72M (8 active) a layer; embedding
  // and lm_head 311M each.
  EXPECT_NEAR(double(f.total_bytes) / 1e9, 61.0, 0.3);
  EXPECT_NEAR(double(f.active_bytes) / 1e9, 6.08, 0.05);
  // --quantization fp8: linears and experts at one byte, the tables at two.
  const WeightFootprint q = weight_footprint(c, weight_bits(c.quant, "fp8"));
  const double tables = 2.0 * 2 * 151936 * 2048;
  EXPECT_NEAR(double(q.total_bytes), (double(f.total_bytes) - tables) / 2 + tables, 1e3);
}

// gpt-oss-20b's MXFP4 experts count 4.25 bits a weight (4-bit codes, an 8-bit scale per 32); its
// attention, routers and tables stay bf16.
TEST(MoeModels, Mxfp4ExpertsCountFourAndAQuarterBits) {
  const ModelConfig c =
      load_model_config(std::string(INFERD_SOURCE_DIR) + "/models/configs/gpt-oss-20b");
  ASSERT_EQ(c.quant.method, QuantMethod::kMxfp4);
  const WeightBits b = weight_bits(c.quant, "");
  EXPECT_DOUBLE_EQ(b.experts, 4.25);
  EXPECT_DOUBLE_EQ(b.linear, 16.0);
  const WeightFootprint f = weight_footprint(c, b);
  // 24 layers of: attention 2880 x (64 + 2 x 8) x 64 + 64 x 64 x 2880, router 32 x 2880, experts
  // of 3 x 2880 x 2880 (4 of 32 active); embedding and lm_head 201088 x 2880 each.
  const double H = 2880, attn = H * 80 * 64 + 64 * 64 * H, router = 32 * H, expert = 3 * H * H;
  const double table = 201088 * H * 2;
  const double active = 24 * ((attn + router) * 2 + 4 * expert * 4.25 / 8) + table + H * 2;
  const double total = 24 * ((attn + router) * 2 + 32 * expert * 4.25 / 8) + 2 * table;
  EXPECT_NEAR(double(f.active_bytes), active, 1.0);
  EXPECT_NEAR(double(f.total_bytes), total, 1.0);
  EXPECT_NEAR(double(f.active_bytes) / 1e9, 3.71, 0.01);
  EXPECT_NEAR(double(f.total_bytes) / 1e9, 13.8, 0.1);
}

// AWQ / GPTQ int4: 4 bits a weight plus an fp16 scale and (asymmetric) a 4-bit zero point per
// group; the embedding table and lm_head stay 16-bit.
TEST(MoeModels, Int4WeightsCountTheirGroupScalesAndZeros) {
  QuantConfig q;
  q.method = QuantMethod::kAwq;
  q.bits = 4;
  q.group_size = 128;
  EXPECT_DOUBLE_EQ(weight_bits(q, "").linear, 4.0 + 20.0 / 128);
  EXPECT_DOUBLE_EQ(weight_bits(q, "").embed, 16.0);
  q.method = QuantMethod::kGptq;
  q.symmetric = true;
  q.group_size = 32;
  EXPECT_DOUBLE_EQ(weight_bits(q, "").linear, 4.5);
  q.bits = 8;
  q.group_size = -1;  // one group a row: the scales are noise
  EXPECT_DOUBLE_EQ(weight_bits(q, "").linear, 8.0);
  ModelConfig c;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.vocab_size = 1000;
  c.tie_word_embeddings = true;
  q.method = QuantMethod::kAwq;
  q.bits = 4;
  q.group_size = 128;
  q.symmetric = false;
  const WeightFootprint f = weight_footprint(c, weight_bits(q, ""));
  const double linear = 2 * (256.0 * (256 + 2 * 128) + 256.0 * 256 + 3 * 256.0 * 512);
  EXPECT_NEAR(double(f.total_bytes), linear * (4.0 + 20.0 / 128) / 8 + 1000 * 256 * 2, 1.0);
  EXPECT_NEAR(double(f.active_bytes), linear * (4.0 + 20.0 / 128) / 8 + 1000 * 256 * 2 + 512, 1.0);
}

TEST(MoeModels, ExpertLoadIsProfiled) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.expert_load_profile = true;
  ModelRunner m(kGoldens + "qwen3_moe", o, make_cpu_backend(2));
  std::vector<int32_t> prompt(20);
  for (int32_t i = 0; i < 20; ++i) prompt[size_t(i)] = 3 + i * 7;
  testing_util::forward_all(m, {prompt}, 64);
  const std::string p = m.step_profile();
  // Two MoE layers (0 and 2), 8 experts, 3 a token: 20 tokens routed a layer.
  EXPECT_NE(p.find("expert load (2 MoE layers, 8 experts, 3 a token): 20 tokens routed a layer"),
            std::string::npos)
      << p;
  m.reset_step_timing();
  EXPECT_NE(m.step_profile().find("no tokens routed"), std::string::npos) << m.step_profile();
}

// gpt-oss runs through the same MoE layer: its expert load shows in the step profile too.
TEST(MoeModels, GptOssExpertLoadIsProfiled) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.expert_load_profile = true;
  ModelRunner m(kGoldens + "gpt_oss_mxfp4", o, make_cpu_backend(2));
  std::vector<int32_t> prompt(20);
  for (int32_t i = 0; i < 20; ++i) prompt[size_t(i)] = 3 + i * 7;
  testing_util::forward_all(m, {prompt}, 64);
  const std::string p = m.step_profile();
  EXPECT_NE(p.find("expert load (2 MoE layers, 6 experts, 3 a token)"), std::string::npos) << p;
  EXPECT_NE(p.find("20 tokens routed a layer"), std::string::npos) << p;
}

}  // namespace
}  // namespace inferd
