// Model loading: config parsing, safetensors (single, sharded), dummy weights, and the clear
// errors bad input must give.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/loader/kv_cache_scales.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
const std::string kLlama = std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3";

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("inferd_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void write(const fs::path& p, const std::string& s) {
  std::ofstream(p) << s;
}

RunnerOptions small_opts() {
  RunnerOptions o;
  o.num_kv_blocks = 8;
  o.max_num_batched_tokens = 32;
  return o;
}

TEST(Config, ParsesArchitectureFlags) {
  auto c = load_model_config(std::string(INFERD_TEST_DATA_DIR) + "/goldens/qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_size(), 128);
  auto q2 = load_model_config(std::string(INFERD_TEST_DATA_DIR) + "/goldens/qwen2");
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_TRUE(q2.tie_word_embeddings);
  auto l = load_model_config(kLlama);
  EXPECT_EQ(l.rope.type, RopeType::kLlama3);
  EXPECT_EQ(l.rope.original_max_position, 32);
  EXPECT_EQ(l.window_of(0), 0);
  auto m = load_model_config(std::string(INFERD_TEST_DATA_DIR) + "/goldens/mistral");
  EXPECT_EQ(m.sliding_window, 12);
  EXPECT_EQ(m.window_of(1), 12);
}

TEST(Config, ErrorsNameTheProblem) {
  EXPECT_NE(error_of([] { load_model_config("/nonexistent/model"); }).find("does not exist"),
            std::string::npos);
  TempDir d;
  EXPECT_NE(error_of([&] { load_model_config(d.str()); }).find("config.json"), std::string::npos);
  write(d / "config.json", R"({"architectures": ["GPT2LMHeadModel"]})");
  const std::string e = error_of([&] { load_model_config(d.str()); });
  EXPECT_NE(e.find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos) << e;
  write(d / "config.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})");
  const std::string e2 = error_of([&] { load_model_config(d.str()); });
  EXPECT_NE(e2.find("missing field 'intermediate_size'"), std::string::npos) << e2;
  write(d / "config.json", "{not json");
  EXPECT_NE(error_of([&] { load_model_config(d.str()); }).find("invalid JSON"), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(kLlama + "/config.json"));
  j.erase("rope_parameters");
  j["rope_scaling"] = {{"rope_type", "su-perfast"}, {"factor", 4.0}};
  write(d / "config.json", j.dump());
  const std::string e3 = error_of([&] { load_model_config(d.str()); });
  EXPECT_NE(e3.find("unsupported rope type 'su-perfast'"), std::string::npos) << e3;
}

// Both generations of config.json: transformers 5's rope_parameters / dtype and the older
// rope_theta + rope_scaling / torch_dtype give the same config; disagreements and keys that
// change the math without being implemented stop the load, naming the key.
TEST(Config, BothGenerationsOfRopeKeys) {
  nlohmann::json base = {{"architectures", {"LlamaForCausalLM"}},
                         {"hidden_size", 64},
                         {"intermediate_size", 128},
                         {"num_hidden_layers", 2},
                         {"num_attention_heads", 4},
                         {"num_key_value_heads", 2},
                         {"vocab_size", 100},
                         {"max_position_embeddings", 256}};
  auto parse = [](const nlohmann::json& j) { return parse_model_config(j.dump(), "config.json"); };
  auto perr = [](const nlohmann::json& j) {
    return error_of([&] { parse_model_config(j.dump(), "config.json"); });
  };
  nlohmann::json newer = base, older = base;
  newer["rope_parameters"] = {{"rope_type", "llama3"},   {"rope_theta", 500000.0},
                              {"factor", 8.0},           {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  newer["dtype"] = "bfloat16";
  older["rope_theta"] = 500000.0;
  older["rope_scaling"] = {{"type", "llama3"},
                           {"factor", 8.0},
                           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 64}};
  older["torch_dtype"] = "bfloat16";
  const ModelConfig a = parse(newer), b = parse(older);
  EXPECT_EQ(a.rope.type, RopeType::kLlama3);
  EXPECT_EQ(b.rope.type, RopeType::kLlama3);
  EXPECT_EQ(a.rope.theta, 500000.0);
  EXPECT_EQ(b.rope.theta, 500000.0);
  EXPECT_EQ(a.rope.original_max_position, 64);
  EXPECT_EQ(a.dtype, "bfloat16");
  EXPECT_EQ(b.dtype, "bfloat16");
  const RopeFrequencies fa = rope_frequencies(a.rope, a.head_dim, 256, 256);
  const RopeFrequencies fb = rope_frequencies(b.rope, b.head_dim, 256, 256);
  EXPECT_EQ(fa.inv_freq, fb.inv_freq);
  // The default theta only when neither place gives one.
  EXPECT_EQ(parse(base).rope.theta, 10000.0);
  EXPECT_EQ(parse(base).rope.type, RopeType::kDefault);

  nlohmann::json both = newer;
  both["rope_theta"] = 10000.0;
  std::string e = perr(both);
  EXPECT_NE(e.find("rope_parameters.rope_theta is 500000.0 but rope_theta is 10000.0"),
            std::string::npos)
      << e;
  both = newer;
  both["torch_dtype"] = "float16";
  e = perr(both);
  EXPECT_NE(e.find("dtype is \"bfloat16\" but torch_dtype is \"float16\""), std::string::npos) << e;
  both = newer;
  both["rope_parameters"]["partial_rotary_factor"] = 0.5;
  e = perr(both);
  EXPECT_NE(e.find("partial_rotary_factor"), std::string::npos) << e;
  both = newer;
  both["rope_parameters"]["mrope_section"] = {16, 24, 24};
  e = perr(both);
  EXPECT_NE(e.find("rope_parameters.mrope_section is not supported"), std::string::npos) << e;
  both = base;
  both["final_logit_softcapping"] = 30.0;
  e = perr(both);
  EXPECT_NE(e.find("'final_logit_softcapping' is set"), std::string::npos) << e;
  both = base;
  both["layer_types"] = {"full_attention", "sliding_attention"};
  e = perr(both);
  EXPECT_NE(e.find("sliding_attention"), std::string::npos) << e;
  both = base;
  both["quantization_config"] = {{"quant_method", "fp8"}};
  e = perr(both);
  EXPECT_NE(e.find("quantization_config"), std::string::npos) << e;
  both = base;
  both["rope_parameters"] = {{"rope_type", "linear"}};
  e = perr(both);
  EXPECT_NE(e.find("needs 'factor'"), std::string::npos) << e;
}

// The rope types against values worked out by hand from transformers' formulas.
TEST(Config, RopeFrequenciesOfEachType) {
  RopeConfig r;
  r.theta = 10000.0;
  const int64_t hd = 8;  // inv_freq = 10000^(-i/4), i = 0..3
  const float plain[4] = {1.0f, 0.1f, 0.01f, 0.001f};
  RopeFrequencies f = rope_frequencies(r, hd, 100, 100);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(f.inv_freq[size_t(i)], plain[i], 1e-6f * plain[i] + 1e-9f);
  EXPECT_EQ(f.attention_scaling, 1.0f);

  r.type = RopeType::kLinear;
  r.factor = 4.0;
  f = rope_frequencies(r, hd, 100, 100);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f.inv_freq[size_t(i)], plain[i] / 4, 1e-6f * plain[i]);

  // dynamic: unchanged up to max_position_embeddings; beyond, base * (f*L/max - (f-1))^(d/(d-2)).
  r.type = RopeType::kDynamic;
  r.factor = 2.0;
  f = rope_frequencies(r, hd, 100, 100);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f.inv_freq[size_t(i)], plain[i], 1e-6f * plain[i]);
  f = rope_frequencies(r, hd, 100, 200);
  const double base = 10000.0 * std::pow(2.0 * 200 / 100 - 1.0, 8.0 / 6.0);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(f.inv_freq[size_t(i)], 1.0 / std::pow(base, i / 4.0), 1e-5 * plain[i]);

  // yarn, factor 4, original 64: mscale 0.1 ln 4 + 1; with beta 32/1 the correction range is
  // [floor(8 ln(64/(64 pi)) / (2 ln 1e4)), ceil(8 ln(64/(2 pi)) / (2 ln 1e4))] = [0, 2] (low
  // clamped at 0), so dims 0..3 blend extrapolation into interpolation by ramp i/2.
  r = RopeConfig();
  r.type = RopeType::kYarn;
  r.factor = 4.0;
  r.original_max_position = 64;
  f = rope_frequencies(r, hd, 256, 256);
  EXPECT_NEAR(f.attention_scaling, 0.1 * std::log(4.0) + 1.0, 1e-6);
  for (int i = 0; i < 4; ++i) {
    const double ramp = std::clamp(i / 2.0, 0.0, 1.0);
    const double want = plain[i] / 4 * ramp + plain[i] * (1 - ramp);
    EXPECT_NEAR(f.inv_freq[size_t(i)], want, 1e-5 * plain[i]) << i;
  }

  // longrope: short factors when every sequence fits the original length, long ones beyond.
  r = RopeConfig();
  r.type = RopeType::kLongrope;
  r.original_max_position = 64;
  r.factor = 4.0;
  r.short_factor = {1, 2, 3, 4};
  r.long_factor = {5, 6, 7, 8};
  f = rope_frequencies(r, hd, 256, 64);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(f.inv_freq[size_t(i)], plain[i] / (i + 1), 1e-6f * plain[i]);
  EXPECT_NEAR(f.attention_scaling, std::sqrt(1 + std::log(4.0) / std::log(64.0)), 1e-6);
  f = rope_frequencies(r, hd, 256, 256);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(f.inv_freq[size_t(i)], plain[i] / (i + 5), 1e-6f * plain[i]);
}

// Copies the llama3 golden model into a temp dir, with its weights rewritten by `edit`.
void copy_with_weights(
    const TempDir& d,
    const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit) {
  fs::copy_file(kLlama + "/config.json", d / "config.json");
  auto idx = SafetensorsIndex::open_file(kLlama + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const auto& [name, info] : idx.tensors()) ts.emplace_back(name, idx.get(name));
  edit(ts);
  write_safetensors((d / "model.safetensors").string(), ts);
}

// The FP8 KV cache scales under each name vLLM reads (llm-compressor's k_scale / v_scale,
// ModelOpt's k_proj.k_scale / v_proj.v_scale, AutoFP8's kv_scale for both), in any float dtype;
// a checkpoint without them has none; a bad or missing half is an error naming it.
TEST(Loading, KvCacheScalesUnderEveryName) {
  TempDir dir;
  int files = 0;  // each case its own file (a rewritten file may still be mapped)
  auto file = [&](const std::vector<std::pair<std::string, Tensor>>& tensors) {
    const std::string path = (dir / ("s" + std::to_string(files++) + ".safetensors")).string();
    write_safetensors(path, tensors);
    return SafetensorsIndex::open_file(path);
  };
  auto scalar = [](float v, DType dt) {
    Tensor t = Tensor::empty_host(dt, {1});
    if (dt == DType::kF32) t.data_as<float>()[0] = v;
    if (dt == DType::kBF16) t.data_as<uint16_t>()[0] = f32_to_bf16(v);
    return t;
  };
  const std::string a = "model.layers.0.self_attn.", b = "model.layers.1.self_attn.";
  const SafetensorsIndex st =
      file({{a + "k_scale", scalar(0.5f, DType::kF32)},
            {a + "v_scale", scalar(2.0f, DType::kBF16)},
            {b + "k_proj.k_scale", scalar(0.25f, DType::kF32)},
            {b + "v_proj.v_scale", scalar(4.0f, DType::kF32)},
            {"model.layers.2.self_attn.kv_scale", scalar(3.0f, DType::kF32)}});
  const std::vector<KvCacheScales> s = read_kv_cache_scales(&st, 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].k, 0.5f);
  EXPECT_EQ(s[0].v, 2.0f);
  EXPECT_EQ(s[1].k, 0.25f);
  EXPECT_EQ(s[1].v, 4.0f);
  EXPECT_EQ(s[2].k, 3.0f);
  EXPECT_EQ(s[2].v, 3.0f);
  EXPECT_TRUE(read_kv_cache_scales(nullptr, 3).empty());
  const SafetensorsIndex none = file({{"model.embed_tokens.weight", scalar(1.0f, DType::kF32)}});
  EXPECT_TRUE(read_kv_cache_scales(&none, 3).empty());
  const SafetensorsIndex half = file({{a + "k_scale", scalar(1.0f, DType::kF32)}});
  EXPECT_EQ(error_of([&] { read_kv_cache_scales(&half, 1); }),
            "layer 0 of the checkpoint has a key scale for its KV cache but no value scale");
  const SafetensorsIndex bad = file(
      {{a + "k_scale", scalar(-1.0f, DType::kF32)}, {a + "v_scale", scalar(1.0f, DType::kF32)}});
  EXPECT_NE(error_of([&] { read_kv_cache_scales(&bad, 1); })
                .find("tensor 'model.layers.0.self_attn.k_scale' must hold one positive finite "
                      "value"),
            std::string::npos);
}

TEST(Loading, MissingTensorIsNamed) {
  TempDir d;
  copy_with_weights(d, [](auto& ts) {
    std::erase_if(ts, [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; });
  });
  const std::string e = error_of([&] { ModelRunner(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("tensor 'model.layers.1.mlp.up_proj.weight' is missing"), std::string::npos)
      << e;
}

TEST(Loading, MisshapedTensorIsNamedWithBothShapes) {
  TempDir d;
  Tensor bad = Tensor::empty_host(DType::kF32, {172, 63});
  copy_with_weights(d, [&](auto& ts) {
    for (auto& [n, t] : ts)
      if (n == "model.layers.0.mlp.gate_proj.weight") t = bad;
  });
  const std::string e = error_of([&] { ModelRunner(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("'model.layers.0.mlp.gate_proj.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("[172, 63], expected [172, 64]"), std::string::npos) << e;
}

TEST(Loading, UnsupportedDtypeIsNamed) {
  TempDir d;
  Tensor bad = Tensor::empty_host(DType::kI32, {64});
  copy_with_weights(d, [&](auto& ts) {
    for (auto& [n, t] : ts)
      if (n == "model.norm.weight") t = bad;
  });
  const std::string e = error_of([&] { ModelRunner(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("'model.norm.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("expected BF16, F16 or F32"), std::string::npos) << e;
}

TEST(Loading, MissingWeightsAndTruncatedFile) {
  TempDir d;
  fs::copy_file(kLlama + "/config.json", d / "config.json");
  std::string e = error_of([&] { ModelRunner(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("no weights in"), std::string::npos) << e;
  // A truncated safetensors file.
  std::ifstream in(kLlama + "/model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write(d / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  e = error_of([&] { ModelRunner(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("run past the end of the file"), std::string::npos) << e;
}

TEST(Loading, ShardedCheckpointGivesTheSameLogits) {
  TempDir d;
  fs::copy_file(kLlama + "/config.json", d / "config.json");
  auto idx = SafetensorsIndex::open_file(kLlama + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> a, b;
  nlohmann::json map;
  int i = 0;
  for (const auto& [name, info] : idx.tensors()) {
    const bool first = (i++ % 2) == 0;
    (first ? a : b).emplace_back(name, idx.get(name));
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors((d / "model-00001-of-00002.safetensors").string(), a);
  write_safetensors((d / "model-00002-of-00002.safetensors").string(), b);
  write(d / "model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  ModelRunner sharded(d.str(), small_opts(), make_cpu_backend(1));
  ModelRunner single(kLlama, small_opts(), make_cpu_backend(1));
  const std::vector<int32_t> prompt = {5, 9, 200, 13};
  EXPECT_EQ(greedy_generate(sharded, prompt, 6, 32), greedy_generate(single, prompt, 6, 32));
  // A shard listed in the index but absent.
  fs::remove(d / "model-00002-of-00002.safetensors");
  const std::string e = error_of([&] { ModelRunner(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("is missing"), std::string::npos) << e;
}

TEST(Loading, DummyWeightsAreSeededAndNeedNoWeightFiles) {
  TempDir d;
  fs::copy_file(kLlama + "/config.json", d / "config.json");
  RunnerOptions o = small_opts();
  o.load.format = LoadFormat::kDummy;
  ModelRunner m1(d.str(), o, make_cpu_backend(1));
  ModelRunner m2(d.str(), o, make_cpu_backend(1));
  o.load.dummy_seed = 7;
  ModelRunner m3(d.str(), o, make_cpu_backend(1));
  const std::vector<int32_t> prompt = {3, 4, 5, 6, 7};
  ForwardBatch b;
  b.token_ids = prompt;
  b.positions = {0, 1, 2, 3, 4};
  b.seqs = {SeqBatchInfo{0, 5, 5, 0, 1}};
  b.block_tables = {0};
  b.logit_rows = {4};
  std::vector<float> l1(320), l2(320), l3(320);
  m1.forward(b, l1.data());
  m2.forward(b, l2.data());
  m3.forward(b, l3.data());
  EXPECT_EQ(l1, l2);
  EXPECT_NE(l1, l3);
  double ss = 0;
  for (float v : l1) {
    ASSERT_TRUE(std::isfinite(v));
    ss += double(v) * v;
  }
  EXPECT_GT(ss, 0.0);
}

TEST(Loading, RequestLongerThanContextIsRefused) {
  RunnerOptions o = small_opts();
  o.max_model_len = 20;
  ModelRunner m(kLlama, o, make_cpu_backend(1));
  const std::string e = error_of([&] { greedy_generate(m, std::vector<int32_t>(15, 3), 10, 32); });
  EXPECT_NE(e.find("exceeds the model's context length 20"), std::string::npos) << e;
}

}  // namespace
}  // namespace inferd
