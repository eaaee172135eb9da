// The seams of the model layer (issue 23): the registry (one entry per family, the supported list
// in the unknown-architecture error), OLMo 2's and Granite's config keys, the loader's shards, the
// quantization config choice, the new CPU ops (scaled residual add, norm-then-add, strided norm,
// logits division) against their formulas, and the runner's speculative-verification shape (k + 1
// query rows of one sequence, every row's logits) against one token at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "model/config.h"
#include "model/golden_util.h"
#include "model/layers/linear.h"
#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"
#include "model/quant/quantization.h"
#include "model/registry.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

nlohmann::json base_config(const std::string& arch) {
  return {{"architectures", {arch}},  {"hidden_size", 64},
          {"intermediate_size", 128}, {"num_hidden_layers", 2},
          {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"vocab_size", 320},        {"max_position_embeddings", 256}};
}

ModelConfig parse(const nlohmann::json& j) {
  return parse_model_config(j.dump(), "config.json");
}

TEST(Registry, EveryFamilyAndOnlyThoseAreSupported) {
  for (const char* a : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                        "Qwen2_5_VLForConditionalGeneration", "Qwen3ForCausalLM",
                        "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration", "Phi3ForCausalLM",
                        "Olmo2ForCausalLM", "GraniteForCausalLM"}) {
    EXPECT_NE(find_architecture(a), nullptr) << a;
  }
  EXPECT_EQ(find_architecture("GPT2LMHeadModel"), nullptr);
  const std::string e = error_of([] { parse(base_config("Olmo2ForCasualLM")); });
  EXPECT_NE(e.find("unsupported architecture 'Olmo2ForCasualLM': expected one of "
                   "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                   "Qwen2_5_VLForConditionalGeneration, Qwen3ForCausalLM, Gemma3ForCausalLM, "
                   "Gemma3ForConditionalGeneration, Phi3ForCausalLM, "
                   "Olmo2ForCausalLM, GraniteForCausalLM"),
            std::string::npos)
      << e;
}

TEST(Granite, ReadsItsMultipliersAndDefaults) {
  nlohmann::json j = base_config("GraniteForCausalLM");
  j.erase("max_position_embeddings");
  ModelConfig c = parse(j);
  EXPECT_EQ(c.max_position_embeddings, 2048);  // GraniteConfig's default
  EXPECT_EQ(c.embedding_multiplier, 1.0);
  EXPECT_EQ(c.residual_multiplier, 1.0);
  EXPECT_EQ(c.attention_scale, 1.0);  // attention_multiplier, not 1 / sqrt(head_dim)
  EXPECT_EQ(c.logits_scaling, 1.0);
  j["embedding_multiplier"] = 12.0;
  j["residual_multiplier"] = 0.22;
  j["attention_multiplier"] = 0.0078125;
  j["logits_scaling"] = 8;
  c = parse(j);
  EXPECT_EQ(c.embedding_multiplier, 12.0);
  EXPECT_EQ(c.residual_multiplier, 0.22);
  EXPECT_EQ(c.attention_scale, 0.0078125);
  EXPECT_EQ(c.logits_scaling, 8.0);
  j["logits_scaling"] = -1;
  EXPECT_NE(error_of([&] { parse(j); }).find("logits_scaling must be a positive number"),
            std::string::npos);
  // Other families still refuse Granite's keys.
  nlohmann::json l = base_config("LlamaForCausalLM");
  l["residual_multiplier"] = 0.22;
  EXPECT_NE(
      error_of([&] { parse(l); }).find("'residual_multiplier' is set (0.22) but not supported"),
      std::string::npos);
}

TEST(Olmo2, DefaultsAndRefusals) {
  nlohmann::json j = base_config("Olmo2ForCausalLM");
  j.erase("max_position_embeddings");
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  j["sliding_window"] = 128;
  EXPECT_NE(error_of([&] { parse(j); }).find("has no sliding-window attention"), std::string::npos);
  j.erase("sliding_window");
  j["mlp_bias"] = true;
  EXPECT_NE(error_of([&] { parse(j); }).find("mlp_bias=true is not supported"), std::string::npos);
}

TEST(Quantization, ConfigFollowsTheCheckpointAndTheFlag) {
  ModelConfig c = parse(base_config("LlamaForCausalLM"));
  LoadOptions o;
  EXPECT_EQ(make_quantization_config(c, o)->name(), "none");
  o.quantization = "fp8";
  EXPECT_EQ(make_quantization_config(c, o)->name(), "fp8");
  o.quantization = "awq";
  EXPECT_NE(error_of([&] {
              make_quantization_config(c, o);
            }).find("--quantization awq: the checkpoint's config.json has no quantization_config"),
            std::string::npos);
  o.quantization = "int4";
  EXPECT_NE(error_of([&] {
              make_quantization_config(c, o);
            }).find("unsupported --quantization 'int4': expected fp8, gguf, awq, gptq"),
            std::string::npos);
  c.quant.method = QuantMethod::kCompressedTensorsFp8;
  o.quantization = "";
  EXPECT_EQ(make_quantization_config(c, o)->name(), "compressed-tensors fp8");
  c.quant.method = QuantMethod::kFp8Block;
  EXPECT_EQ(make_quantization_config(c, o)->name(), "fp8 (block scales)");
}

// An FP8 checkpoint's scheme picks the method per linear: its own for the linears stored in
// float8, the unquantized one (or, with --quantization fp8, the online one) for the rest.
TEST(Quantization, Fp8CheckpointPicksAMethodPerLinear) {
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/fp8/llama3_ct_channel";
  const ModelConfig c = load_model_config(dir);
  auto cpu = make_cpu_backend(1);
  const LinearSpec fp8 =
      plain_linear("model.layers.0.mlp.down_proj", c.hidden_size, c.intermediate_size);
  const LinearSpec f32 = plain_linear("lm_head", c.vocab_size, c.hidden_size);
  for (const std::string q : {"", "fp8"}) {
    LoadOptions o;
    o.quantization = q;
    ModelLoader loader(dir, c, o, *cpu, 256);
    EXPECT_EQ(loader.quantization().linear_method(fp8, loader).name(), "compressed-tensors fp8");
    EXPECT_EQ(loader.quantization().linear_method(f32, loader).name(),
              q.empty() ? "unquantized" : "fp8 (online, per channel)");
    o.format = LoadFormat::kDummy;  // no checkpoint: nothing is stored in float8
    ModelLoader dummy(dir, c, o, *cpu, 256);
    EXPECT_EQ(dummy.quantization().linear_method(fp8, dummy).name(),
              q.empty() ? "unquantized" : "fp8 (online, per channel)");
  }
}

// Shards of a real checkpoint tensor: rows are views, columns copies; together they are the
// whole tensor; a dimension that does not divide is an error naming the tensor.
TEST(Loader, ShardsTileTheTensor) {
  const std::string dir = testing_util::goldens_dir() + "llama3";
  const ModelConfig c = load_model_config(dir);
  auto cpu = make_cpu_backend(1);
  ModelLoader loader(dir, c, LoadOptions(), *cpu, 256);
  const std::string name = "model.layers.0.mlp.gate_proj.weight";
  const int64_t F = c.intermediate_size, H = c.hidden_size;
  const Tensor whole = loader.weight(name, {F, H});
  ASSERT_EQ(whole.dtype(), DType::kF32);
  for (int dim : {0, 1}) {
    for (int64_t rank = 0; rank < 2; ++rank) {
      const Tensor part = loader.weight(name, std::vector<int64_t>{F, H}, Shard{dim, rank, 2});
      ASSERT_EQ(part.size(dim), (dim == 0 ? F : H) / 2);
      ASSERT_EQ(part.size(1 - dim), dim == 0 ? H : F);
      for (int64_t r = 0; r < part.size(0); ++r)
        for (int64_t k = 0; k < part.size(1); ++k) {
          const int64_t wr = dim == 0 ? r + rank * F / 2 : r, wk = dim == 1 ? k + rank * H / 2 : k;
          ASSERT_EQ(part.data_as<float>()[r * part.stride(0) + k],
                    whole.data_as<float>()[wr * H + wk]);
        }
    }
  }
  EXPECT_NE(error_of([&] {
              loader.weight(name, std::vector<int64_t>{F, H}, Shard{0, 0, 3});
            }).find("not divisible into 3 shards"),
            std::string::npos);
}

// ---- the CPU reference of the ops the new families added -------------------------------------
Tensor rand_tensor(std::initializer_list<int64_t> shape, std::mt19937& g, float lo = -2,
                   float hi = 2) {
  Tensor t = Tensor::empty_host(DType::kF32, shape);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = u(g);
  return t;
}

std::vector<float> norm_ref(const float* x, const float* w, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const double r = 1.0 / std::sqrt(ss / double(n) + eps);
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = float(w[i] * x[i] * r);
  return out;
}

TEST(CpuOps, ResidualAddsAndNormsMatchTheirFormulas) {
  std::mt19937 g(std::random_device{}());
  auto be = make_cpu_backend(2);
  const int64_t T = 5, H = 96;
  const float eps = 1e-5f;
  Tensor x = rand_tensor({T, H}, g), w = rand_tensor({H}, g, 0.5f, 1.5f);
  Tensor res = rand_tensor({T, H}, g);
  // rms_norm_add: residual += rms_norm(x) * w.
  Tensor r1 = Tensor::empty_host(DType::kF32, {T, H});
  std::copy(res.data_as<float>(), res.data_as<float>() + T * H, r1.data_as<float>());
  be->rms_norm_add(x, w, eps, r1);
  for (int64_t t = 0; t < T; ++t) {
    const auto n = norm_ref(x.data_as<float>() + t * H, w.data_as<float>(), H, eps);
    for (int64_t i = 0; i < H; ++i)
      ASSERT_NEAR(r1.data_as<float>()[t * H + i], res.data_as<float>()[t * H + i] + n[size_t(i)],
                  1e-5);
  }
  // add_rms_norm with a scale: residual += x * m, then the norm; m = 1 is bit-exact the unscaled.
  Tensor r2 = Tensor::empty_host(DType::kF32, {T, H}), r3 = Tensor::empty_host(DType::kF32, {T, H});
  std::copy(res.data_as<float>(), res.data_as<float>() + T * H, r2.data_as<float>());
  std::copy(res.data_as<float>(), res.data_as<float>() + T * H, r3.data_as<float>());
  Tensor o2 = Tensor::empty_host(DType::kF32, {T, H}), o3 = Tensor::empty_host(DType::kF32, {T, H});
  be->add_rms_norm(r2, x, 0.25f, w, eps, o2);
  for (int64_t i = 0; i < T * H; ++i)
    ASSERT_EQ(r2.data_as<float>()[i], res.data_as<float>()[i] + x.data_as<float>()[i] * 0.25f);
  be->add_rms_norm(r3, x, 1.0f, w, eps, o3);
  Tensor r4 = Tensor::empty_host(DType::kF32, {T, H}), o4 = Tensor::empty_host(DType::kF32, {T, H});
  std::copy(res.data_as<float>(), res.data_as<float>() + T * H, r4.data_as<float>());
  be->add_rms_norm(r4, x, w, eps, o4);
  EXPECT_EQ(std::memcmp(o3.data(), o4.data(), o3.nbytes()), 0);
  // rms_norm in place on a column view (OLMo 2's q norm over the whole projection).
  Tensor qkv = rand_tensor({T, 3 * H}, g), q0 = rand_tensor({T, H}, g);
  for (int64_t t = 0; t < T; ++t)
    std::copy(qkv.data_as<float>() + t * 3 * H, qkv.data_as<float>() + t * 3 * H + H,
              q0.data_as<float>() + t * H);
  Tensor q = qkv.slice_cols(0, H);
  be->rms_norm(q, w, eps, q);
  for (int64_t t = 0; t < T; ++t) {
    const auto n = norm_ref(q0.data_as<float>() + t * H, w.data_as<float>(), H, eps);
    for (int64_t i = 0; i < H; ++i)
      ASSERT_NEAR(qkv.data_as<float>()[t * 3 * H + i], n[size_t(i)], 1e-5);
  }
  // div_scalar: IEEE division.
  Tensor l = rand_tensor({T, H}, g, -30, 30), l0 = rand_tensor({T, H}, g);
  std::copy(l.data_as<float>(), l.data_as<float>() + T * H, l0.data_as<float>());
  be->div_scalar(l, 3.0f);
  for (int64_t i = 0; i < T * H; ++i)
    ASSERT_EQ(l.data_as<float>()[i], l0.data_as<float>()[i] / 3.0f);
}

// A verification step (speculative decoding): one sequence brings k + 1 new tokens and wants the
// logits of every one; they equal the logits of the same tokens run one step at a time.
TEST(Runner, VerificationRowsMatchOneTokenAtATime) {
  const std::string dir = testing_util::goldens_dir() + "qwen3";
  RunnerOptions o;
  o.num_kv_blocks = 16;
  o.block_size = 4;
  o.max_num_batched_tokens = 64;
  ModelRunner a(dir, o, make_cpu_backend(2)), b(dir, o, make_cpu_backend(2));
  const std::vector<int32_t> prompt = {3, 17, 42, 99, 5, 8, 250};
  const std::vector<int32_t> draft = {11, 12, 13, 14};  // k = 3 drafts after the last token
  const int32_t V = a.vocab_size();
  auto prefill = [&](ModelRunner& m) {
    ForwardBatch fb;
    fb.token_ids = prompt;
    for (int32_t p = 0; p < int32_t(prompt.size()); ++p) fb.positions.push_back(p);
    fb.seqs.push_back({0, int32_t(prompt.size()), int32_t(prompt.size()), 0, 4});
    fb.block_tables = {0, 1, 2, 3};
    fb.logit_rows = {int32_t(prompt.size()) - 1};
    std::vector<float> l(static_cast<size_t>(V));
    m.forward(fb, l.data());
  };
  prefill(a);
  prefill(b);
  const int32_t P = int32_t(prompt.size());
  // a: the k + 1 rows in one step.
  ForwardBatch fb;
  fb.token_ids = draft;
  for (int32_t j = 0; j < 4; ++j) fb.positions.push_back(P + j);
  fb.seqs.push_back({0, 4, P + 4, 0, 4});
  fb.block_tables = {0, 1, 2, 3};
  fb.logit_rows = {0, 1, 2, 3};
  std::vector<float> together(size_t(4 * V));
  a.forward(fb, together.data());
  // b: one token a step.
  for (int32_t j = 0; j < 4; ++j) {
    ForwardBatch one;
    one.token_ids = {draft[size_t(j)]};
    one.positions = {P + j};
    one.seqs.push_back({0, 1, P + j + 1, 0, 4});
    one.block_tables = {0, 1, 2, 3};
    one.logit_rows = {0};
    std::vector<float> l(static_cast<size_t>(V));
    b.forward(one, l.data());
    EXPECT_LT(testing_util::rel_err(together.data() + size_t(j) * size_t(V), l.data(), size_t(V)),
              1e-5)
        << "row " << j;
  }
}

TEST(Runner, RejectsRowsNoModelConsumesYet) {
  const std::string dir = testing_util::goldens_dir() + "llama3";
  RunnerOptions o;
  o.num_kv_blocks = 8;
  o.max_num_batched_tokens = 16;
  ModelRunner m(dir, o, make_cpu_backend(1));
  ForwardBatch fb;
  fb.token_ids = {1, 2};
  fb.positions = {0, 1};
  fb.seqs.push_back({0, 2, 2, 0, 1});
  fb.block_tables = {0};
  fb.logit_rows = {1};
  std::vector<float> l(static_cast<size_t>(m.vocab_size()));
  fb.seqs[0].adapter_id = 3;
  EXPECT_NE(error_of([&] { m.forward(fb, l.data()); }).find("LoRA adapter 3"), std::string::npos);
  fb.seqs[0].adapter_id = -1;
  fb.embedding_spans.push_back({0, 1, 0});
  // A text-only model (issue 34): image embeddings are refused, naming why.
  EXPECT_NE(error_of([&] { m.forward(fb, l.data()); }).find("has no vision tower"),
            std::string::npos);
  fb.embedding_spans.clear();
  m.forward(fb, l.data());  // and the plain batch still runs
}

}  // namespace
}  // namespace inferd
