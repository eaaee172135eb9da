// GGUF models on the CPU (issue 35): the golden models written as GGUF files the way llama.cpp's
// converter writes them (gguf_convert_util.h) give the logits of the same model loaded from its
// Hugging Face directory (F32: to rounding; Q8_0 / Q4_0 / K-quants: within quantization error),
// and the metadata mapping refuses what it cannot represent.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/gguf_convert_util.h"
#include "model/golden_util.h"
#include "model/loader/gguf_model.h"
#include "model/loader/model_source.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using testing_util::forward_all;
using testing_util::ints;
using testing_util::rel_err;

const std::string kGoldens = testing_util::goldens_dir();

fs::path temp_dir(const std::string& tag) {
  const fs::path d =
      fs::temp_directory_path() / ("inferd-gguf-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::unique_ptr<ModelRunner> load(const std::string& path) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  return std::make_unique<ModelRunner>(path, o, make_cpu_backend(2));
}

// The golden model's directory, or a copy whose config.json says only what GGUF can say (GGUF
// has no sliding window for llama / qwen3 layers; Gemma 3's every-sixth-layer pattern, query
// scale and local rope base are fixed by llama.cpp).
std::string gguf_expressible_dir(const std::string& name, const fs::path& tmp) {
  const fs::path src = kGoldens + name;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(src / "config.json"));
  bool changed = false;
  const std::string arch = j["architectures"][0];
  if (arch == "MistralForCausalLM" || arch == "Qwen3ForCausalLM") {
    j.erase("sliding_window");
    j.erase("layer_types");
    j.erase("use_sliding_window");
    changed = true;
  }
  if (arch == "Gemma3ForCausalLM") {
    j.erase("layer_types");
    j["sliding_window_pattern"] = 6;
    j["query_pre_attn_scalar"] = j["head_dim"];
    // llama.cpp's local rope base is 10000 whatever the model says.
    if (j.contains("rope_parameters") && j["rope_parameters"].contains("sliding_attention"))
      j["rope_parameters"]["sliding_attention"]["rope_theta"] = 10000.0;
    if (j.contains("rope_local_base_freq")) j["rope_local_base_freq"] = 10000.0;
    changed = true;
  }
  if (!changed) return src.string();
  const fs::path dst = tmp / "hf";
  fs::create_directories(dst);
  std::ofstream(dst / "config.json") << j.dump(1);
  fs::create_symlink(fs::absolute(src / "model.safetensors"), dst / "model.safetensors");
  return dst.string();
}

std::vector<std::vector<int32_t>> golden_prompts(const std::string& name) {
  const auto gold = SafetensorsIndex::open_file(kGoldens + name + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i)
    prompts.push_back(ints(gold.get("prompt" + std::to_string(i) + ".ids")));
  return prompts;
}

// Logits of the GGUF file (linear weights in `type`) against a reference, per prompt: the largest
// relative error. The reference is the Hugging Face directory, or (`vs_dequantized`) a GGUF file
// of the same weights quantized to `type` and stored back as F32: then only the 8-bit
// quantization of the activations (ggml's dot products) separates the two.
double gguf_error(const std::string& name, ggml::Type type, bool vs_dequantized) {
  const fs::path tmp = temp_dir(name);
  const std::string hf = gguf_expressible_dir(name, tmp);
  const ModelConfig c = load_model_config(hf);
  const std::string file = (tmp / "model.gguf").string(), ref = (tmp / "ref.gguf").string();
  testing_util::write_gguf_like_llama_cpp(hf, c, file, type);
  if (vs_dequantized) testing_util::write_gguf_like_llama_cpp(hf, c, ref, type, true);
  auto a = load(vs_dequantized ? ref : hf);
  auto b = load(file);
  EXPECT_EQ(a->vocab_size(), b->vocab_size());
  double worst = 0;
  for (const auto& p : golden_prompts(name)) {
    const auto ra = forward_all(*a, {p}, 64)[0];
    const auto rb = forward_all(*b, {p}, 64)[0];
    EXPECT_EQ(ra.size(), rb.size());
    for (float v : rb) EXPECT_TRUE(std::isfinite(v));
    worst = std::max(worst, rel_err(rb.data(), ra.data(), ra.size()));
  }
  fs::remove_all(tmp);
  return worst;
}

class GgufGoldens : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufGoldens, F32FileGivesTheDirectorysLogits) {
  const double err = gguf_error(GetParam(), ggml::Type::kF32, false);
  // Same weights, same math; Llama 3's rope arrives as llama.cpp's per-frequency divisors.
  EXPECT_LT(err, 2e-6) << GetParam();
}

// Quantized files: the logits of the same weights dequantized, up to the 8-bit activations of the
// quantized dot products (these tiny random models have small, flat logits: relative errors read
// large; the demo model's perplexity is the accuracy figure).
TEST_P(GgufGoldens, Q8_0FileComputesItsWeights) {
  const double err = gguf_error(GetParam(), ggml::Type::kQ8_0, true);
  EXPECT_LT(err, 4e-2) << GetParam();
  EXPECT_GT(gguf_error(GetParam(), ggml::Type::kQ8_0, false), 1e-6)
      << GetParam() << ": the weights were not quantized";
}

TEST_P(GgufGoldens, LegacyTypeFilesComputeTheirWeights) {
  EXPECT_LT(gguf_error(GetParam(), ggml::Type::kQ4_0, true), 4e-2) << GetParam();
  EXPECT_LT(gguf_error(GetParam(), ggml::Type::kQ5_1, true), 4e-2) << GetParam();
  EXPECT_LT(gguf_error(GetParam(), ggml::Type::kQ4_1, true), 4e-2) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Architectures, GgufGoldens,
                         ::testing::Values("llama3", "llama32_tied", "llama_linear", "mistral",
                                           "qwen2", "qwen2_yarn", "qwen3", "phi3", "gemma3",
                                           "gemma3_softcap"));

// The Llama 3 golden from its GGUF file against transformers' own logits.
TEST(GgufModel, Llama3FileMatchesTransformers) {
  const fs::path tmp = temp_dir("llama3-ref");
  const std::string hf = kGoldens + "llama3";
  const std::string file = (tmp / "model.gguf").string();
  testing_util::write_gguf_like_llama_cpp(hf, load_model_config(hf), file, ggml::Type::kF32);
  auto m = load(file);
  const auto gold = SafetensorsIndex::open_file(hf + "/golden.safetensors");
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    const auto ids = ints(gold.get("prompt" + std::to_string(i) + ".ids"));
    const Tensor ref = gold.get("prompt" + std::to_string(i) + ".logits");
    const auto got = forward_all(*m, {ids}, 64)[0];
    ASSERT_EQ(got.size(), size_t(ref.numel()));
    EXPECT_LT(rel_err(got.data(), ref.data_as<float>(), got.size()), 1e-4) << "prompt " << i;
  }
  fs::remove_all(tmp);
}

// K-quants need rows of 256: a model with hidden 256 written in each K type (Q4_K and Q6_K are
// those of Q4_K_M files), against the same weights dequantized.
TEST(GgufModel, KQuantFilesStayWithinQuantizationError) {
  const fs::path tmp = temp_dir("kquant");
  const fs::path hf = tmp / "hf";
  testing_util::write_random_qwen2_dir(kGoldens + "qwen2/config.json", hf.string(), 256, 512);
  const ModelConfig c = load_model_config(hf.string());
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 200, 3, 77, 12, 14, 100, 2, 8, 31},
                                                     {7, 7, 8, 9, 10}};
  auto orig = load(hf.string());
  for (ggml::Type t :
       {ggml::Type::kQ8_0, ggml::Type::kQ6_K, ggml::Type::kQ5_K, ggml::Type::kQ4_K,
        ggml::Type::kQ5_0, ggml::Type::kQ3_K, ggml::Type::kQ2_K, ggml::Type::kIQ4_NL}) {
    const std::string file = (tmp / "model.gguf").string(), ref = (tmp / "ref.gguf").string();
    testing_util::write_gguf_like_llama_cpp(hf.string(), c, file, t);
    testing_util::write_gguf_like_llama_cpp(hf.string(), c, ref, t, true);
    auto m = load(file);
    auto r = load(ref);
    double worst = 0, vs_orig = 0;
    for (const auto& p : prompts) {
      const auto a = forward_all(*r, {p}, 64)[0];
      const auto b = forward_all(*m, {p}, 64)[0];
      const auto o = forward_all(*orig, {p}, 64)[0];
      worst = std::max(worst, rel_err(b.data(), a.data(), a.size()));
      vs_orig = std::max(vs_orig, rel_err(b.data(), o.data(), o.size()));
    }
    std::printf("%-7s vs its dequantized weights %.2e, vs the original weights %.2e\n",
                std::string(ggml::type_name(uint32_t(t))).c_str(), worst, vs_orig);
    EXPECT_LT(worst, 4e-2) << ggml::type_name(uint32_t(t));
    EXPECT_GT(vs_orig, 1e-6) << ggml::type_name(uint32_t(t)) << ": the weights were not quantized";
  }
  fs::remove_all(tmp);
}

GgufMetadata base_metadata(const std::string& arch) {
  GgufMetadata kv;
  kv["general.architecture"] = gguf_string(arch);
  kv[arch + ".embedding_length"] = gguf_u32(64);
  kv[arch + ".block_count"] = gguf_u32(2);
  kv[arch + ".feed_forward_length"] = gguf_u32(128);
  kv[arch + ".attention.head_count"] = gguf_u32(4);
  kv[arch + ".attention.head_count_kv"] = gguf_u32(2);
  kv[arch + ".context_length"] = gguf_u32(256);
  kv[arch + ".attention.layer_norm_rms_epsilon"] = gguf_f32(1e-5f);
  return kv;
}

std::string write_metadata_only(const GgufMetadata& kv, const std::string& tag) {
  const fs::path tmp = temp_dir(tag);
  const std::string file = (tmp / "m.gguf").string();
  GgufWriteTensor emb;
  emb.name = "token_embd.weight";
  emb.type = ggml::Type::kF32;
  emb.shape = {32, 64};
  emb.bytes.assign(32 * 64 * 4, 0);
  write_gguf(file, kv, {emb});
  return file;
}

TEST(GgufModel, ConfigFromMetadata) {
  GgufMetadata kv = base_metadata("qwen3");
  kv["qwen3.attention.key_length"] = gguf_u32(32);
  kv["qwen3.attention.value_length"] = gguf_u32(32);
  kv["qwen3.rope.freq_base"] = gguf_f32(1e6f);
  kv["tokenizer.ggml.eos_token_id"] = gguf_u32(7);
  const ModelConfig c = load_gguf_model_config(write_metadata_only(kv, "cfg"));
  EXPECT_EQ(c.architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(c.head_dim, 32);  // key_length, not hidden / heads
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.vocab_size, 32);
  EXPECT_TRUE(c.tie_word_embeddings);  // no output.weight
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.quant.method, QuantMethod::kGguf);
  ASSERT_EQ(c.eos_token_ids.size(), 1u);
  EXPECT_EQ(c.eos_token_ids[0], 7);
}

TEST(GgufModel, UnsupportedMetadataIsAnError) {
  const auto fails_with = [](const GgufMetadata& kv, const std::string& word) {
    try {
      load_gguf_model_config(write_metadata_only(kv, "bad"));
      ADD_FAILURE() << "no error; expected one naming " << word;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  fails_with(base_metadata("mamba"), "mamba");
  GgufMetadata partial = base_metadata("llama");
  partial["llama.rope.dimension_count"] = gguf_u32(8);
  fails_with(partial, "partial rotary");
  GgufMetadata scaling = base_metadata("llama");
  scaling["llama.rope.scaling.type"] = gguf_string("fancy");
  fails_with(scaling, "fancy");
  GgufMetadata missing = base_metadata("llama");
  missing.erase("llama.block_count");
  fails_with(missing, "block_count");
}

// A tensor in a type inferd has no kernels for stops the load naming the tensor and the type.
TEST(GgufModel, UnsupportedTensorTypeIsAnError) {
  const fs::path tmp = temp_dir("iq2");
  // IQ2_XXS has 256-element blocks: a model with 256-wide rows.
  const std::string kq = (tmp / "kq").string(), file = (tmp / "m.gguf").string();
  testing_util::write_random_qwen2_dir(kGoldens + "qwen2/config.json", kq, 256, 512);
  testing_util::write_gguf_like_llama_cpp(kq, load_model_config(kq), file, ggml::Type::kF32);
  const GgufFile f = GgufFile::open(file);
  GgufMetadata kv = f.metadata();
  std::vector<GgufWriteTensor> ts;
  for (const GgufTensorInfo& t : f.tensors()) {
    GgufWriteTensor w;
    w.name = t.name;
    w.shape = t.shape;
    w.type = t.type;
    w.bytes.assign(t.data, t.data + t.nbytes);
    if (t.name == "blk.0.attn_q.weight") {
      w.type = ggml::Type::kIQ2_XXS;
      w.bytes.assign(size_t(t.shape[0] * ggml::row_bytes(ggml::Type::kIQ2_XXS, t.shape[1])), 0);
    }
    ts.push_back(std::move(w));
  }
  const std::string bad = (tmp / "bad.gguf").string();
  write_gguf(bad, kv, ts);
  try {
    load(bad);
    ADD_FAILURE() << "an IQ2_XXS tensor loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_q.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("iq2_xxs"), std::string::npos) << e.what();
  }
  fs::remove_all(tmp);
}

TEST(ModelSource, OllamaNamesResolveThroughTheStore) {
  const fs::path store = temp_dir("ollama");
  const std::string digest(64, 'a');
  fs::create_directories(store / "blobs");
  std::ofstream(store / "blobs" / ("sha256-" + digest)) << "GGUF";
  const fs::path man = store / "manifests/registry.ollama.ai/library/qwen3";
  fs::create_directories(man);
  std::ofstream(man / "8b") << nlohmann::json{
      {"layers",
       {{{"mediaType", "application/vnd.ollama.image.template"},
         {"digest", "sha256:" + std::string(64, 'b')}},
        {{"mediaType", "application/vnd.ollama.image.model"},
         {"digest",
          "sha256:" + digest}}}}}.dump();
  ::setenv("OLLAMA_MODELS", store.c_str(), 1);
  EXPECT_EQ(resolve_model_source("ollama:qwen3:8b"),
            (store / "blobs" / ("sha256-" + digest)).string());
  EXPECT_EQ(resolve_model_source("/some/dir"), "/some/dir");
  for (const char* bad : {"ollama:qwen3", "ollama:nope:1b", "ollama:", "ollama:../x:1"}) {
    EXPECT_THROW(resolve_model_source(bad), Error) << bad;
  }
  try {
    resolve_model_source("ollama:qwen3:latest");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ollama pull qwen3:latest"), std::string::npos)
        << e.what();
  }
  fs::remove(store / "blobs" / ("sha256-" + digest));
  EXPECT_THROW(resolve_model_source("ollama:qwen3:8b"), Error);
  ::unsetenv("OLLAMA_MODELS");
  fs::remove_all(store);
}

}  // namespace
}  // namespace inferd
