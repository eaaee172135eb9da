// Gemma 3 and Phi-3 config.json parsing: both generations of the rope keys, transformers'
// defaults for the fields a config leaves out, the keys that only these architectures may set,
// and the errors a malformed config gives; the real configs under models/configs with dummy
// weights (the numerics are checked against transformers by the goldens).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "model/golden_util.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

using json = nlohmann::json;

ModelConfig parse(const json& j) {
  return parse_model_config(j.dump(), "config.json");
}
std::string error_of(const json& j) {
  try {
    parse(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

json gemma3_base() {
  return {{"architectures", {"Gemma3ForCausalLM"}},
          {"model_type", "gemma3_text"},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"num_hidden_layers", 6},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 32},
          {"vocab_size", 320},
          {"max_position_embeddings", 256}};
}

json phi3_base() {
  return {{"architectures", {"Phi3ForCausalLM"}},
          {"model_type", "phi3"},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"vocab_size", 320},
          {"max_position_embeddings", 256}};
}

TEST(Gemma3Config, DefaultsAreTransformers) {
  const ModelConfig c = parse(gemma3_base());
  EXPECT_TRUE(c.qk_norm && c.norm_weight_plus_one && c.embedding_scaled && c.sandwich_norms &&
              c.gelu_tanh);
  EXPECT_FALSE(c.fused_qkv_gate_up);
  EXPECT_TRUE(c.tie_word_embeddings);               // Gemma3TextConfig's default
  EXPECT_DOUBLE_EQ(c.attention_scale, 1.0 / 16.0);  // query_pre_attn_scalar 256
  EXPECT_EQ(c.final_logit_softcap, 0.0);
  // sliding_window_pattern 6: layers 0-4 slide (window 4096), layer 5 is global.
  ASSERT_EQ(c.layer_sliding.size(), 6u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.window_of(i), 4096) << i;
  EXPECT_EQ(c.window_of(5), 0);
  EXPECT_TRUE(c.has_rope_local);
  EXPECT_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.rope_local.theta, 1e4);
  EXPECT_EQ(c.rope.type, RopeType::kDefault);

  json j = gemma3_base();
  j.erase("head_dim");
  j.erase("max_position_embeddings");
  const ModelConfig d = parse(j);
  EXPECT_EQ(d.head_dim, 256);
  EXPECT_EQ(d.max_position_embeddings, 131072);
}

// gemma-3-4b's config in the transformers 4 style and the same in the transformers 5 style.
TEST(Gemma3Config, BothGenerationsOfPerLayerTypeRope) {
  json older = gemma3_base(), newer = gemma3_base();
  older["rope_theta"] = 1000000.0;
  older["rope_local_base_freq"] = 10000.0;
  older["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  older["sliding_window"] = 12;
  older["sliding_window_pattern"] = 3;
  older["query_pre_attn_scalar"] = 24;
  newer["rope_parameters"] = {
      {"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1000000.0}}},
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  newer["layer_types"] = {"sliding_attention", "sliding_attention", "full_attention",
                          "sliding_attention", "sliding_attention", "full_attention"};
  newer["sliding_window"] = 12;
  newer["query_pre_attn_scalar"] = 24;
  for (const json& j : {older, newer}) {
    const ModelConfig c = parse(j);
    EXPECT_EQ(c.rope.type, RopeType::kLinear);
    EXPECT_EQ(c.rope.factor, 8.0);
    EXPECT_EQ(c.rope.theta, 1e6);
    EXPECT_EQ(c.rope_local.type, RopeType::kDefault);
    EXPECT_EQ(c.rope_local.theta, 1e4);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(c.window_of(i), i % 3 == 2 ? 0 : 12) << i;
    EXPECT_DOUBLE_EQ(c.attention_scale, 1.0 / std::sqrt(24.0));
  }
  // The two places must agree.
  json both = newer;
  both["rope_local_base_freq"] = 20000.0;
  std::string e = error_of(both);
  EXPECT_NE(e.find("rope_parameters.sliding_attention.rope_theta is 10000.0 but "
                   "rope_local_base_freq is 20000.0"),
            std::string::npos)
      << e;
  // One flat dict cannot say which layers it is for.
  both = gemma3_base();
  both["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}};
  e = error_of(both);
  EXPECT_NE(e.find("one entry per layer type"), std::string::npos) << e;
  both = newer;
  both["rope_parameters"]["chunked_attention"] = json::object();
  e = error_of(both);
  EXPECT_NE(e.find("rope_parameters.chunked_attention"), std::string::npos) << e;
  both = newer;
  both["rope_parameters"]["sliding_attention"]["rope_type"] = "ntk-by-parts";
  e = error_of(both);
  EXPECT_NE(e.find("unsupported rope type 'ntk-by-parts'"), std::string::npos) << e;
}

TEST(Gemma3Config, SoftcappingAndItsErrors) {
  json j = gemma3_base();
  j["final_logit_softcapping"] = 30.0;
  j["attn_logit_softcapping"] = 50.0;  // transformers' Gemma 3 does not use it
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.final_logit_softcap, 30.0);
  j["final_logit_softcapping"] = nullptr;
  EXPECT_EQ(parse(j).final_logit_softcap, 0.0);

  j = gemma3_base();
  j["hidden_activation"] = "relu";
  std::string e = error_of(j);
  EXPECT_NE(e.find("unsupported hidden_activation \"relu\""), std::string::npos) << e;
  j = gemma3_base();
  j["use_bidirectional_attention"] = true;
  e = error_of(j);
  EXPECT_NE(e.find("use_bidirectional_attention"), std::string::npos) << e;
  j = gemma3_base();
  j["query_pre_attn_scalar"] = 0;
  e = error_of(j);
  EXPECT_NE(e.find("query_pre_attn_scalar must be positive"), std::string::npos) << e;
  j = gemma3_base();
  j["sliding_window"] = nullptr;
  e = error_of(j);
  EXPECT_NE(e.find("sliding_window must be a positive integer"), std::string::npos) << e;
  // The Gemma keys still stop the load of the other architectures.
  json p = phi3_base();
  p["query_pre_attn_scalar"] = 24;
  e = error_of(p);
  EXPECT_NE(e.find("'query_pre_attn_scalar' is set"), std::string::npos) << e;
  p = phi3_base();
  p["final_logit_softcapping"] = 30.0;
  e = error_of(p);
  EXPECT_NE(e.find("'final_logit_softcapping' is set"), std::string::npos) << e;
}

TEST(Phi3Config, FusedWeightsLongropeAndWindow) {
  const ModelConfig plain = parse(phi3_base());
  EXPECT_TRUE(plain.fused_qkv_gate_up);
  EXPECT_FALSE(plain.norm_weight_plus_one || plain.sandwich_norms || plain.gelu_tanh ||
               plain.embedding_scaled || plain.qk_norm || plain.qkv_bias);
  EXPECT_EQ(plain.rms_norm_eps, 1e-5);  // Phi3Config's default
  EXPECT_EQ(plain.window_of(0), 0);
  EXPECT_EQ(plain.attention_scale, 0.0);

  const std::vector<double> shorts = {1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7};
  const std::vector<double> longs = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0};
  json j = phi3_base();
  j["original_max_position_embeddings"] = 16;
  j["sliding_window"] = 24;
  j["rope_theta"] = 10000.0;
  j["rope_scaling"] = {{"type", "su"}, {"short_factor", shorts}, {"long_factor", longs}};
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.rope.type, RopeType::kLongrope);  // "su" is longrope's old name
  EXPECT_EQ(c.rope.original_max_position, 16);
  EXPECT_EQ(c.rope.factor, 16.0);  // max_position_embeddings / original
  EXPECT_EQ(c.rope.short_factor, shorts);
  EXPECT_EQ(c.rope.long_factor, longs);
  EXPECT_EQ(c.window_of(0), 24);
  EXPECT_EQ(c.window_of(1), 24);
  // sqrt(1 + ln 16 / ln 16) = sqrt 2; long factors beyond the original length.
  const RopeFrequencies lf = rope_frequencies(c.rope, c.head_dim, 256, 256);
  EXPECT_NEAR(lf.attention_scaling, std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(lf.inv_freq[1], 1.0 / (2.0 * std::pow(10000.0, 2.0 / 16)), 1e-7);
  const RopeFrequencies sf = rope_frequencies(c.rope, c.head_dim, 256, 16);
  EXPECT_NEAR(sf.inv_freq[1], 1.0 / (1.1 * std::pow(10000.0, 2.0 / 16)), 1e-7);

  // Phi3Config: original_max_position_embeddings defaults to 4096 and replaces the rope dict's.
  json d = j;
  d.erase("original_max_position_embeddings");
  d["rope_scaling"]["original_max_position_embeddings"] = 32;
  EXPECT_EQ(parse(d).rope.original_max_position, 4096);
  d["rope_scaling"]["type"] = "yarn";  // also longrope for Phi-3
  EXPECT_EQ(parse(d).rope.type, RopeType::kLongrope);

  json bad = j;
  bad["rope_scaling"]["long_factor"] = {1.0, 2.0};
  std::string e = error_of(bad);
  EXPECT_NE(e.find("long_factor has 2 entries, expected head_dim / 2 = 8"), std::string::npos) << e;
  bad = j;
  bad["hidden_act"] = "gelu";
  e = error_of(bad);
  EXPECT_NE(e.find("unsupported hidden_act \"gelu\""), std::string::npos) << e;
  bad = j;
  bad["partial_rotary_factor"] = 0.75;  // Phi-4-mini
  e = error_of(bad);
  EXPECT_NE(e.find("partial_rotary_factor"), std::string::npos) << e;
  bad = j;
  bad["layer_types"] = {"full_attention", "sliding_attention"};
  e = error_of(bad);
  EXPECT_NE(e.find("sliding_attention"), std::string::npos) << e;
}

// models/configs/<name>/config.json with some fields replaced, in a fresh directory.
class ConfigDir {
 public:
  ConfigDir(const std::string& name, const json& changes) {
    path_ =
        std::filesystem::temp_directory_path() / ("inferd_gemma_phi_" + std::to_string(::getpid()) +
                                                  "_" + name + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
    json j = json::parse(
        std::ifstream(std::string(INFERD_SOURCE_DIR) + "/models/configs/" + name + "/config.json"));
    j.merge_patch(changes);
    std::ofstream(path_ / "config.json") << j.dump(2);
  }
  ~ConfigDir() { std::filesystem::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
  static inline int counter_ = 0;
};

std::unique_ptr<ModelRunner> dummy_model(const std::string& dir) {
  RunnerOptions o;
  o.load.format = LoadFormat::kDummy;
  o.load.dummy_seed = 7;
  o.num_kv_blocks = 16;
  o.block_size = 16;
  o.max_num_batched_tokens = 64;
  return std::make_unique<ModelRunner>(dir, o, make_cpu_backend(2));
}

TEST(GemmaPhiDummy, RealConfigsLoadAsTheirArchitecture) {
  const std::string root = std::string(INFERD_SOURCE_DIR) + "/models/configs/";
  const ModelConfig g = load_model_config(root + "gemma-3-1b");
  EXPECT_EQ(g.head_dim, 256);
  EXPECT_DOUBLE_EQ(g.attention_scale, 1.0 / 16);
  EXPECT_EQ(g.window_of(0), 512);
  EXPECT_EQ(g.window_of(5), 0);
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{1, 106}));
  EXPECT_TRUE(g.tie_word_embeddings && g.sandwich_norms && g.gelu_tanh);
  const ModelConfig p = load_model_config(root + "phi-3-mini-4k");
  EXPECT_TRUE(p.fused_qkv_gate_up);
  EXPECT_EQ(p.head_dim, 96);
  EXPECT_EQ(p.window_of(31), 2047);
  EXPECT_EQ(p.rope.type, RopeType::kDefault);
}

// Real per-layer shapes with dummy weights, fewer layers, a small vocab and short windows: a
// prompt longer than the window gives the same logits in one chunk and in chunks of 5, and the
// final soft-capping maps each logit x to tanh(x / cap) * cap.
TEST(GemmaPhiDummy, ChunksAgreeAndSoftcapIsApplied) {
  std::vector<int32_t> prompt;
  for (int32_t i = 0; i < 37; ++i) prompt.push_back((i * 7919) % 1000);
  const json small_gemma = {{"num_hidden_layers", 6}, {"vocab_size", 1000}, {"sliding_window", 9}};
  const json small_phi = {{"num_hidden_layers", 1}, {"vocab_size", 1000}, {"sliding_window", 9}};
  std::vector<float> plain;
  for (const auto& [name, changes] : std::vector<std::pair<std::string, json>>{
           {"gemma-3-1b", small_gemma}, {"phi-3-mini-4k", small_phi}}) {
    SCOPED_TRACE(name);
    ConfigDir d(name, changes);
    auto m = dummy_model(d.str());
    const auto whole = testing_util::forward_all(*m, {prompt}, 64)[0];
    const auto chunked = testing_util::forward_all(*m, {prompt}, 5)[0];
    ASSERT_EQ(whole.size(), prompt.size() * 1000);
    for (float v : whole) ASSERT_TRUE(std::isfinite(v));
    EXPECT_LT(testing_util::rel_err(chunked.data(), whole.data(), whole.size()), 1e-5);
    if (name == "gemma-3-1b") plain = whole;
  }
  // Logits of the dummy Gemma are small: a cap of 0.25 bites.
  json capped = small_gemma;
  capped["final_logit_softcapping"] = 0.25;
  ConfigDir d("gemma-3-1b", capped);
  auto m = dummy_model(d.str());
  const auto got = testing_util::forward_all(*m, {prompt}, 64)[0];
  ASSERT_EQ(got.size(), plain.size());
  float most = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    most = std::max(most, std::abs(plain[i]));
    ASSERT_NEAR(got[i], std::tanh(plain[i] / 0.25f) * 0.25f, 1e-5f) << i;
  }
  EXPECT_GT(most, 0.5f) << "the cap would not change anything";
}

}  // namespace
}  // namespace inferd
