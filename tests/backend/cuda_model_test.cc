// The whole decoder on the CUDA backend: the goldens in tests/data/goldens (bf16 logits within
// 2e-2 relative error of the fp32 reference at every position, alone and batched in chunks; the
// first 8 greedy tokens identical), and a real-shaped dummy model against the CPU backend with the
// same weights. Prints one "[cuda-golden] ..." line per check for scripts/gpu-check.sh.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cuda_test_util.h"
#include "inferd/engine.h"
#include "model/gguf_convert_util.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

const std::string kGoldens = testing_util::goldens_dir();
using testing_util::forward_all;
using testing_util::ints;
constexpr double kLogitTol = 2e-2;
constexpr size_t kGreedyTokens = 8;

// The gpt-oss goldens' logits: a bf16 pipeline alone is 2.25e-2 (gpt_oss) and 1.61e-2
// (gpt_oss_mxfp4) off their fp64 reference (the fixtures of a03eb6c's successor: 40-token prompts
// screened for router near-ties at 0.04). tools/gpt_oss_bf16_emulation.py rounds to bf16 where
// this backend does and gave the H100's numbers to three digits on the earlier fixtures (2.083e-2;
// 4.801e-2 on prompts whose router bf16 re-routed). The fixtures amplify rounding (experts of
// gain 4 through the SwiGLU clamps, lm_head gain 3); a window off by one, a sink counted twice,
// no YaRN attention factor or the clamp at 8 instead of 7 put them 0.12 to 0.45 off.
double logit_tol(const std::string& golden) {
  return golden.rfind("gpt_oss", 0) == 0 ? 3e-2 : kLogitTol;
}

std::unique_ptr<ModelRunner> load_cuda(const std::string& dir, int32_t max_batched) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = max_batched;
  return std::make_unique<ModelRunner>(dir, o, make_cuda_backend(0));
}

class CudaGoldens : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { INFERD_REQUIRE_GPU(); }
};

TEST_P(CudaGoldens, LogitsWithinBf16ToleranceAloneAndBatched) {
  auto m = load_cuda(kGoldens + GetParam(), 256);
  EXPECT_EQ(m->backend().device(), Device::kCUDA);
  const auto gold = SafetensorsIndex::open_file(kGoldens + GetParam() + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  std::vector<Tensor> refs;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    prompts.push_back(ints(gold.get("prompt" + std::to_string(i) + ".ids")));
    refs.push_back(gold.get("prompt" + std::to_string(i) + ".logits"));
    ASSERT_EQ(refs.back().size(0), int64_t(prompts.back().size()));
    ASSERT_EQ(refs.back().size(1), m->vocab_size());
  }
  ASSERT_FALSE(prompts.empty());
  // Each prompt alone in one chunk, then all together in chunks of 64, 5 and 1 tokens.
  for (int32_t chunk : {0, 64, 5, 1}) {
    std::vector<std::vector<float>> got;
    if (chunk == 0) {
      for (const auto& p : prompts) got.push_back(forward_all(*m, {p}, 64)[0]);
    } else {
      got = forward_all(*m, prompts, chunk);
    }
    double worst = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_EQ(got[i].size(), size_t(refs[i].numel()));
      const double err = test::rel_err(got[i].data(), refs[i].data_as<float>(), got[i].size());
      worst = std::max(worst, err);
      EXPECT_LT(err, logit_tol(GetParam())) << GetParam() << " prompt " << i << " ("
                                            << prompts[i].size() << " tokens) chunk " << chunk;
    }
    std::printf("[cuda-golden] %s logits %s: max rel err %.3e\n", GetParam().c_str(),
                chunk == 0 ? "alone" : ("batched chunk " + std::to_string(chunk)).c_str(), worst);
  }
}

TEST_P(CudaGoldens, FirstGreedyTokensMatchReference) {
  for (int32_t chunk : {64, 3}) {
    auto m = load_cuda(kGoldens + GetParam(), chunk);
    const auto gold = SafetensorsIndex::open_file(kGoldens + GetParam() + "/golden.safetensors");
    int same = 0, total = 0;
    for (int j = 0; gold.contains("greedy" + std::to_string(j) + ".tokens"); ++j) {
      const int pi = ints(gold.get("greedy" + std::to_string(j) + ".prompt_index"))[0];
      const auto prompt = ints(gold.get("prompt" + std::to_string(pi) + ".ids"));
      auto want = ints(gold.get("greedy" + std::to_string(j) + ".tokens"));
      want.resize(std::min(want.size(), kGreedyTokens));
      const auto got = greedy_generate(*m, prompt, int32_t(want.size()), chunk);
      EXPECT_EQ(got, want) << GetParam() << " greedy " << j << " chunk " << chunk;
      ++total;
      same += got == want;
    }
    std::printf("[cuda-golden] %s greedy chunk %d: %d/%d sequences identical (%zu tokens)\n",
                GetParam().c_str(), chunk, same, total, kGreedyTokens);
  }
}

// Prompt logprobs on the device (scoring rows in the CUDA sampler, chunked prefill, a prefix-cache
// hit recomputed), as lm-eval reads them: equal to the log-softmax of the same model's logits run
// in the same chunks (float rounding), and near transformers' (the bf16 model's distance, printed).
TEST_P(CudaGoldens, PromptLogprobsNearTransformers) {
  const auto gold = SafetensorsIndex::open_file(kGoldens + GetParam() + "/golden.safetensors");
  EngineConfig cfg;
  cfg.max_num_batched_tokens = 16;
  std::shared_ptr<ModelRunner> m(load_cuda(kGoldens + GetParam(), 16));
  Engine engine(m, cfg);
  double worst = 0, worst_hf = 0;
  int greedy_same = 0, total = 0;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    const auto ids = ints(gold.get("prompt" + std::to_string(i) + ".ids"));
    const Tensor ref = gold.get("prompt" + std::to_string(i) + ".logits");
    if (ids.size() < 3) continue;
    const size_t ctxlen = ids.size() / 2;
    const auto hf = testing_util::loglikelihood(ref.data_as<float>(), ref.size(1), ids, ctxlen);
    GenerateRequest ctx;
    ctx.prompt_token_ids.assign(ids.begin(), ids.begin() + long(ctxlen));
    ctx.params.max_tokens = 1;
    engine.generate({ctx});
    GenerateRequest r;
    r.prompt_token_ids = ids;
    r.params.prompt_logprobs = 1;
    r.params.max_tokens = 1;
    const GenerateResult res = engine.generate({r})[0];
    ASSERT_EQ(res.prompt_logprobs.size(), ids.size() - 1);
    // The engine is idle now: the same model, the same 16-token chunks, every row's logits.
    const auto own = forward_all(*m, {ids}, 16)[0];
    const auto dev = testing_util::loglikelihood(own.data(), m->vocab_size(), ids, ctxlen);
    bool greedy = true;
    for (size_t p = ctxlen; p < ids.size(); ++p) {
      const SampleLogprobs& lp = res.prompt_logprobs[p - 1];
      EXPECT_EQ(lp.token_id, ids[p]);
      const double d = std::fabs(lp.logprob - dev.per_token[p - ctxlen]);
      const double d_hf = std::fabs(lp.logprob - hf.per_token[p - ctxlen]);
      worst = std::max(worst, d);
      worst_hf = std::max(worst_hf, d_hf);
      EXPECT_LT(d, 2e-3) << GetParam() << " position " << p;
      EXPECT_LT(d_hf, 0.5) << GetParam() << " position " << p;
      greedy = greedy && lp.rank == 1;
    }
    EXPECT_EQ(greedy, dev.is_greedy) << GetParam() << " prompt " << i;
    ++total;
    greedy_same += greedy == hf.is_greedy;
  }
  std::printf(
      "[cuda-golden] %s prompt logprobs: max |diff| %.3e vs its own logits, %.3e vs "
      "transformers; is_greedy as transformers %d/%d\n",
      GetParam().c_str(), worst, worst_hf, greedy_same, total);
}

// Embeddings (LAST and MEAN pooling, normalised) pooled on the device equal the CPU backend's on
// the same weights (within bf16 rounding).
TEST_P(CudaGoldens, PooledEmbeddingsMatchCpuBackend) {
  auto cfg_for = [] {
    EngineConfig c;
    c.task = ModelTask::kEmbed;
    c.max_num_batched_tokens = 16;
    return c;
  };
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = 16;
  Engine gpu(std::shared_ptr<ModelRunner>(load_cuda(kGoldens + GetParam(), 16)), cfg_for());
  Engine cpu(std::make_shared<ModelRunner>(kGoldens + GetParam(), o, make_cpu_backend(2)),
             cfg_for());
  const auto gold = SafetensorsIndex::open_file(kGoldens + GetParam() + "/golden.safetensors");
  double worst = 0;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    for (PoolingType t : {PoolingType::kLast, PoolingType::kMean}) {
      GenerateRequest r;
      r.prompt_token_ids = ints(gold.get("prompt" + std::to_string(i) + ".ids"));
      r.pooling = PoolingParams{t, true, std::nullopt};
      const auto g = gpu.generate({r})[0].embedding, c = cpu.generate({r})[0].embedding;
      ASSERT_EQ(g.size(), c.size());
      ASSERT_FALSE(c.empty());
      const double err = test::rel_err(g.data(), c.data(), c.size());
      worst = std::max(worst, err);
      // bf16 activations against fp32 (Gemma 3's sandwich norms come out at 2.0e-2; gpt_oss's
      // amplifying fixture at 3.1e-2 on the H100, as its logits: logit_tol).
      EXPECT_LT(err, std::max(3e-2, 1.5 * logit_tol(GetParam())))
          << GetParam() << " prompt " << i << " " << to_string(t);
    }
  }
  std::printf("[cuda-golden] %s pooled embeddings: max rel err vs CPU %.3e\n", GetParam().c_str(),
              worst);
}

// A Qwen3-Embedding-style checkpoint (bare-decoder names, no lm_head) on the device: LAST and MEAN
// embeddings against transformers' (tests/data/goldens_embed; the CPU path is checked to 1e-4 in
// tests/llm/embedding_golden_test.cc).
TEST(CudaModel, Qwen3EmbeddingNearTransformers) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/goldens_embed/qwen3_embedding";
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = 16;
  o.load.pooling_only = true;
  EngineConfig c;
  c.task = ModelTask::kEmbed;
  c.max_num_batched_tokens = 16;
  Engine engine(std::make_shared<ModelRunner>(dir, o, make_cuda_backend(0)), c);
  const auto gold = SafetensorsIndex::open_file(dir + "/golden.safetensors");
  double worst = 0;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    const std::string p = "prompt" + std::to_string(i);
    for (PoolingType t : {PoolingType::kLast, PoolingType::kMean}) {
      GenerateRequest r;
      r.prompt_token_ids = ints(gold.get(p + ".ids"));
      r.pooling = PoolingParams{t, true, std::nullopt};
      const auto got = engine.generate({r})[0].embedding;
      const Tensor want = gold.get(p + (t == PoolingType::kLast ? ".last" : ".mean"));
      ASSERT_EQ(got.size(), size_t(want.numel()));
      const double err = test::rel_err(got.data(), want.data_as<float>(), got.size());
      worst = std::max(worst, err);
      EXPECT_LT(err, kLogitTol) << p << " " << to_string(t);
    }
  }
  std::printf("[cuda-golden] qwen3_embedding embeddings: max rel err vs transformers %.3e\n",
              worst);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, CudaGoldens,
                         ::testing::ValuesIn(testing_util::golden_models()));

// A real-shaped model (Qwen2.5-0.5B: qkv bias, tied embeddings, GQA 7, head_dim 64, vocab 152k)
// with the same dummy bf16 weights on both backends: a prefill batch of two sequences, then a
// decode step of both.
TEST(CudaModel, DummyQwen05BMatchesCpuBackend) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen2.5-0.5b";
  RunnerOptions o;
  o.load.format = LoadFormat::kDummy;
  o.load.dummy_seed = 3;
  o.num_kv_blocks = 16;
  o.block_size = 16;
  o.max_num_batched_tokens = 64;
  const int threads = int(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  ModelRunner gpu(dir, o, make_cuda_backend(0));
  ModelRunner cpu(dir, o, make_cpu_backend(threads));
  Rng rng(11);
  // Prefill 24 + 13 tokens, then one decode token each.
  ForwardBatch pre = test::make_batch({{0, 24}, {0, 13}}, 16, 16, rng, 1000);
  ForwardBatch dec = pre;
  dec.token_ids = {int32_t(rng.next_u64() % 1000), int32_t(rng.next_u64() % 1000)};
  dec.positions = {24, 13};
  dec.seqs[0].q_start = 0;
  dec.seqs[0].q_len = 1;
  dec.seqs[0].kv_len = 25;
  dec.seqs[0].num_blocks = 2;
  dec.seqs[1].q_start = 1;
  dec.seqs[1].q_len = 1;
  dec.seqs[1].kv_len = 14;
  dec.logit_rows = {1, 0};
  const size_t V = size_t(cpu.vocab_size());
  for (const ForwardBatch* b : {&pre, &dec}) {
    std::vector<float> lg(b->logit_rows.size() * V), lc(lg.size());
    gpu.forward(*b, lg.data());
    cpu.forward(*b, lc.data());
    const double err = test::rel_err(lg.data(), lc.data(), lg.size());
    std::printf("[cuda-golden] qwen2.5-0.5b dummy %s: rel err vs CPU %.3e\n",
                b == &pre ? "prefill 24+13" : "decode 2", err);
    EXPECT_LT(err, 5e-2) << (b == &pre ? "prefill" : "decode");
  }
}

// GGUF files (issue 35) on CUDA against the CPU backend: the blocks kept on the GPU (the GEMV up
// to 16 rows, dequantized tiles and cuBLASLt above) against the CPU's integer dot products on the
// same blocks (8-bit activations there, bf16 here). Legacy types on the llama3 golden (rows of
// 64), K-quants on a Qwen2 model with rows of 256 and 512; prompts long enough for both paths.
TEST(CudaModel, GgufFilesMatchCpuBackend) {
  INFERD_REQUIRE_GPU();
  namespace fs = std::filesystem;
  const fs::path tmp =
      fs::temp_directory_path() / ("inferd-cuda-gguf-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string kq = (tmp / "kq").string();
  testing_util::write_random_qwen2_dir(kGoldens + "qwen2/config.json", kq, 256, 512);
  const std::vector<std::pair<std::string, ggml::Type>> cases = {
      {kGoldens + "llama3", ggml::Type::kQ8_0},
      {kGoldens + "llama3", ggml::Type::kQ4_0},
      {kGoldens + "llama3", ggml::Type::kQ5_0},
      {kq, ggml::Type::kQ4_K},
      {kq, ggml::Type::kQ6_K},
      {kq, ggml::Type::kQ5_K}};
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 5, 9, 200, 3, 77, 12, 14, 100, 2, 8, 31, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55},
      {7, 7, 8}};
  const int threads = int(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  for (const auto& [dir, type] : cases) {
    const std::string file = (tmp / "m.gguf").string();
    testing_util::write_gguf_like_llama_cpp(dir, load_model_config(dir), file, type);
    RunnerOptions o;
    o.num_kv_blocks = 64;
    o.block_size = 16;
    o.max_num_batched_tokens = 64;
    ModelRunner gpu(file, o, make_cuda_backend(0));
    ModelRunner cpu(file, o, make_cpu_backend(threads));
    for (int32_t chunk : {64, 1}) {  // prefill (above 16 rows) and token by token (the GEMV)
      const auto g = forward_all(gpu, prompts, chunk), c = forward_all(cpu, prompts, chunk);
      for (size_t i = 0; i < prompts.size(); ++i) {
        const double err = test::rel_err(g[i].data(), c[i].data(), c[i].size());
        std::printf("[cuda-golden] gguf %s %s chunk %d prompt %zu: rel err vs CPU %.3e\n",
                    fs::path(dir).filename().c_str(),
                    std::string(ggml::type_name(uint32_t(type))).c_str(), chunk, i, err);
        EXPECT_LT(err, 5e-2) << dir << " " << ggml::type_name(uint32_t(type)) << " chunk " << chunk;
      }
    }
  }
  fs::remove_all(tmp);
}

// Gemma 3 (1B's layers: head_dim 256, GQA 4, sandwich norms, GELU, scaled tied embeddings) and
// Phi-3-mini (head_dim 96: no tensor-core prefill kernel) with dummy weights on both backends:
// fewer layers, windows shorter than the prefill, and a final soft-cap that bites (Gemma), so the
// prefill and decode kernels both apply the windows, each layer type's rope and the cap.
TEST(CudaModel, DummyGemma3AndPhi3MatchCpuBackend) {
  INFERD_REQUIRE_GPU();
  namespace fs = std::filesystem;
  const int threads = int(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"gemma-3-1b",
       {{"num_hidden_layers", 8}, {"sliding_window", 24}, {"final_logit_softcapping", 1.0}}},
      {"phi-3-mini-4k", {{"num_hidden_layers", 4}, {"sliding_window", 24}}}};
  for (const auto& [name, changes] : cases) {
    const fs::path dir =
        fs::temp_directory_path() / ("inferd_cuda_" + name + "_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    nlohmann::json j = nlohmann::json::parse(
        std::ifstream(std::string(INFERD_SOURCE_DIR) + "/models/configs/" + name + "/config.json"));
    j.merge_patch(changes);
    std::ofstream(dir / "config.json") << j.dump(2);
    RunnerOptions o;
    o.load.format = LoadFormat::kDummy;
    o.load.dummy_seed = 9;
    o.num_kv_blocks = 16;
    o.block_size = 16;
    o.max_num_batched_tokens = 64;
    ModelRunner gpu(dir.string(), o, make_cuda_backend(0));
    ModelRunner cpu(dir.string(), o, make_cpu_backend(threads));
    fs::remove_all(dir);
    Rng rng(13);
    // Prefill 40 + 13 tokens, then one decode token each.
    ForwardBatch pre = test::make_batch({{0, 40}, {0, 13}}, 16, 16, rng, 1000);
    ForwardBatch dec = pre;
    dec.token_ids = {int32_t(rng.next_u64() % 1000), int32_t(rng.next_u64() % 1000)};
    dec.positions = {40, 13};
    dec.seqs[0].q_start = 0;
    dec.seqs[0].q_len = 1;
    dec.seqs[0].kv_len = 41;
    dec.seqs[1].q_start = 1;
    dec.seqs[1].q_len = 1;
    dec.seqs[1].kv_len = 14;
    dec.logit_rows = {1, 0};
    const size_t V = size_t(cpu.vocab_size());
    for (const ForwardBatch* b : {&pre, &dec}) {
      std::vector<float> lg(b->logit_rows.size() * V), lc(lg.size());
      gpu.forward(*b, lg.data());
      cpu.forward(*b, lc.data());
      const double err = test::rel_err(lg.data(), lc.data(), lg.size());
      std::printf("[cuda-golden] %s dummy %s: rel err vs CPU %.3e\n", name.c_str(),
                  b == &pre ? "prefill 40+13" : "decode 2", err);
      EXPECT_LT(err, 5e-2) << name << (b == &pre ? " prefill" : " decode");
    }
  }
}

// Engine runs on one dummy model: decode batches of exactly a captured size, so the graph and the
// eager path run the same kernels with the same shapes and must give identical tokens.
std::vector<std::vector<int32_t>> run_requests(Engine& engine, int32_t vocab, uint64_t seed,
                                               bool extras) {
  Rng rng(seed);
  std::vector<GenerateRequest> reqs(8);
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateRequest& r = reqs[i];
    const int32_t len = 5 + int32_t(rng.next_u64() % 24);
    for (int32_t j = 0; j < len; ++j)
      r.prompt_token_ids.push_back(int32_t(rng.next_u64() % uint64_t(vocab)));
    r.params.max_tokens = 24;
    r.params.ignore_eos = true;
    r.params.detokenize = false;
    r.params.temperature = i < 6 ? 0.0f : 0.8f;  // two seeded random rows
    r.params.seed = 1000 + i;
    if (extras && i % 2 == 1) {
      r.params.logprobs = 5;
      r.params.repetition_penalty = 1.3f;
      r.params.logit_bias = {{int32_t(i), 2.0f}};
    }
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& g : engine.generate(std::move(reqs))) {
    EXPECT_TRUE(g.error.empty()) << g.error;
    out.push_back(g.outputs.at(0).token_ids);
  }
  return out;
}

RunnerOptions small_dummy_options() {
  RunnerOptions o;
  o.load.format = LoadFormat::kDummy;
  o.load.dummy_seed = 5;
  o.num_kv_blocks = 256;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 8;
  return o;
}

EngineConfig small_engine_config() {
  EngineConfig ec;
  ec.max_num_seqs = 8;
  ec.max_num_batched_tokens = 256;
  ec.enable_prefix_caching = false;
  return ec;
}

TEST(CudaModel, GraphsOnAndOffGiveIdenticalTokens) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen2.5-0.5b";
  auto model = std::make_shared<ModelRunner>(dir, small_dummy_options(), make_cuda_backend(0));
  EXPECT_EQ(model->graph_batch_sizes(), (std::vector<int32_t>{1, 2, 4, 8}));
  Engine engine(model, small_engine_config());
  for (bool extras : {false, true}) {
    model->set_graphs_enabled(true);
    const auto with_graphs = run_requests(engine, model->vocab_size(), 42, extras);
    model->set_graphs_enabled(false);
    const auto eager = run_requests(engine, model->vocab_size(), 42, extras);
    EXPECT_EQ(with_graphs, eager) << (extras ? "with logprobs, penalties, bias" : "plain");
    for (const auto& t : with_graphs) EXPECT_EQ(t.size(), 24u);
  }
  // An --enforce-eager model captures nothing and still serves (its GEMM algorithms are timed
  // afresh, so its tokens may differ in near-ties from the other model's).
  RunnerOptions o = small_dummy_options();
  o.enforce_eager = true;
  auto eager_model = std::make_shared<ModelRunner>(dir, o, make_cuda_backend(0));
  EXPECT_TRUE(eager_model->graph_batch_sizes().empty());
  Engine eager_engine(eager_model, small_engine_config());
  for (const auto& t : run_requests(eager_engine, model->vocab_size(), 7, false))
    EXPECT_EQ(t.size(), 24u);
}

// A step's logits depend only on the batch: not on what earlier steps left in the KV blocks past
// each sequence's length, nor on which blocks hold it. (The engine's second run of the same
// requests reuses blocks that the first run's decode tokens wrote.)
TEST(CudaModel, LogitsDoNotDependOnStaleKvOrBlockPlacement) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen2.5-0.5b";
  RunnerOptions o = small_dummy_options();
  o.enforce_eager = true;
  ModelRunner gpu(dir, o, make_cuda_backend(0));
  const size_t V = size_t(gpu.vocab_size());
  Rng rng(21);
  const ForwardBatch pre = test::make_batch({{0, 21}, {0, 13}, {0, 30}}, 16, 64, rng, 1000);
  auto logits = [&](const ForwardBatch& b) {
    std::vector<float> lg(b.logit_rows.size() * V);
    gpu.forward(b, lg.data());
    return lg;
  };
  const std::vector<float> first = logits(pre);  // fresh (zeroed) blocks
  EXPECT_EQ(logits(pre), first) << "the same prefill twice";
  // Fill every slot of the same blocks (positions up to 31 of each sequence) with other keys.
  ForwardBatch fill = pre;
  fill.token_ids.clear();
  fill.positions.clear();
  fill.logit_rows.clear();
  for (SeqBatchInfo& s : fill.seqs) {
    s.q_start = fill.num_tokens();
    s.q_len = s.kv_len = s.num_blocks * 16;
    for (int32_t j = 0; j < s.q_len; ++j) {
      fill.token_ids.push_back(int32_t(rng.next_u64() % 1000));
      fill.positions.push_back(j);
    }
    fill.logit_rows.push_back(fill.num_tokens() - 1);
  }
  (void)logits(fill);
  const std::vector<float> stale = logits(pre);
  size_t differ = 0;
  for (size_t i = 0; i < first.size(); ++i) differ += first[i] != stale[i];
  EXPECT_EQ(differ, 0u) << "prefill logits changed with stale keys past the prompts (" << differ
                        << " of " << first.size() << ")";
  // The same prompts in other blocks.
  ForwardBatch moved = pre;
  for (int32_t& blk : moved.block_tables) blk = 63 - blk;
  const std::vector<float> other = logits(moved);
  differ = 0;
  for (size_t i = 0; i < first.size(); ++i) differ += first[i] != other[i];
  EXPECT_EQ(differ, 0u) << "prefill logits changed with the block placement (" << differ << ")";
}

// The same requests run twice on one engine give the same tokens, eagerly and with graphs (the
// steps have the same composition both times, so every kernel sees the same shapes).
TEST(CudaModel, SameRequestsTwiceGiveIdenticalTokens) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen2.5-0.5b";
  auto model = std::make_shared<ModelRunner>(dir, small_dummy_options(), make_cuda_backend(0));
  Engine engine(model, small_engine_config());
  for (bool graphs : {false, true}) {
    model->set_graphs_enabled(graphs);
    const auto first = run_requests(engine, model->vocab_size(), 42, false);
    const auto second = run_requests(engine, model->vocab_size(), 42, false);
    EXPECT_EQ(first, second) << (graphs ? "with graphs" : "eager");
  }
}

TEST(CudaModel, NothingIsAllocatedOnTheGpuWhileServing) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen2.5-0.5b";
  auto model = std::make_shared<ModelRunner>(dir, small_dummy_options(), make_cuda_backend(0));
  Engine engine(model, small_engine_config());
  int64_t free0 = 0, free1 = 0, free2 = 0, total = 0;
  const int64_t allocated0 = model->backend().device_bytes_allocated();
  EXPECT_GT(allocated0, 0);
  ASSERT_TRUE(model->backend().memory_info(&free0, &total));
  run_requests(engine, model->vocab_size(), 1, true);
  ASSERT_TRUE(model->backend().memory_info(&free1, &total));
  for (uint64_t s = 2; s < 6; ++s) run_requests(engine, model->vocab_size(), s, s % 2 == 0);
  ASSERT_TRUE(model->backend().memory_info(&free2, &total));
  std::printf(
      "[cuda-golden] GPU memory: %.1f MiB taken by the first requests (lazily loaded "
      "kernels), %.1f MiB by the next 32\n",
      double(free0 - free1) / 1048576.0, double(free1 - free2) / 1048576.0);
  // inferd's own allocations: none after start-up. The driver's free memory may still shrink by
  // the code of kernels loaded lazily on first use (a few MiB; bounded here).
  EXPECT_EQ(model->backend().device_bytes_allocated(), allocated0)
      << "the backend allocated device memory while serving";
  EXPECT_LT(free0 - free2, int64_t(32) << 20);
  const StepTiming t = model->step_timing();
  EXPECT_GT(t.steps, 0);
  EXPECT_GT(t.busy_ms, 0.0);
}

}  // namespace
}  // namespace inferd
