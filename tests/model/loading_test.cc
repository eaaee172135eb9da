// Model loading: config parsing, safetensors (single, sharded), dummy weights, and the clear
// errors bad input must give.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/decoder.h"
#include "model/safetensors.h"
#include "model/simple_generate.h"

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

ModelOptions small_opts() {
  ModelOptions o;
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
  EXPECT_EQ(l.rope_scaling, RopeScaling::kLlama3);
  EXPECT_EQ(l.rope_original_max_position, 32);
  auto m = load_model_config(std::string(INFERD_TEST_DATA_DIR) + "/goldens/mistral");
  EXPECT_EQ(m.sliding_window, 12);
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
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  write(d / "config.json", j.dump());
  EXPECT_NE(
      error_of([&] { load_model_config(d.str()); }).find("unsupported rope_scaling type 'yarn'"),
      std::string::npos);
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

TEST(Loading, MissingTensorIsNamed) {
  TempDir d;
  copy_with_weights(d, [](auto& ts) {
    std::erase_if(ts, [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; });
  });
  const std::string e = error_of([&] { DecoderModel(d.str(), small_opts(), make_cpu_backend(1)); });
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
  const std::string e = error_of([&] { DecoderModel(d.str(), small_opts(), make_cpu_backend(1)); });
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
  const std::string e = error_of([&] { DecoderModel(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("'model.norm.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("expected BF16, F16 or F32"), std::string::npos) << e;
}

TEST(Loading, MissingWeightsAndTruncatedFile) {
  TempDir d;
  fs::copy_file(kLlama + "/config.json", d / "config.json");
  std::string e = error_of([&] { DecoderModel(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("no weights in"), std::string::npos) << e;
  // A truncated safetensors file.
  std::ifstream in(kLlama + "/model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write(d / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  e = error_of([&] { DecoderModel(d.str(), small_opts(), make_cpu_backend(1)); });
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
  DecoderModel sharded(d.str(), small_opts(), make_cpu_backend(1));
  DecoderModel single(kLlama, small_opts(), make_cpu_backend(1));
  const std::vector<int32_t> prompt = {5, 9, 200, 13};
  EXPECT_EQ(greedy_generate(sharded, prompt, 6, 32), greedy_generate(single, prompt, 6, 32));
  // A shard listed in the index but absent.
  fs::remove(d / "model-00002-of-00002.safetensors");
  const std::string e = error_of([&] { DecoderModel(d.str(), small_opts(), make_cpu_backend(1)); });
  EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("is missing"), std::string::npos) << e;
}

TEST(Loading, DummyWeightsAreSeededAndNeedNoWeightFiles) {
  TempDir d;
  fs::copy_file(kLlama + "/config.json", d / "config.json");
  ModelOptions o = small_opts();
  o.load_format = LoadFormat::kDummy;
  DecoderModel m1(d.str(), o, make_cpu_backend(1));
  DecoderModel m2(d.str(), o, make_cpu_backend(1));
  o.dummy_seed = 7;
  DecoderModel m3(d.str(), o, make_cpu_backend(1));
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
  ModelOptions o = small_opts();
  o.max_model_len = 20;
  DecoderModel m(kLlama, o, make_cpu_backend(1));
  const std::string e = error_of([&] { greedy_generate(m, std::vector<int32_t>(15, 3), 10, 32); });
  EXPECT_NE(e.find("exceeds the model's context length 20"), std::string::npos) << e;
}

}  // namespace
}  // namespace inferd
