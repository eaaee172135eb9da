// Tensor parallelism on the CPU backend (issue 33): TP = 2 and 4 (threads sharing memory through
// the CPU communicator) give the logits of TP = 1 within 1e-4 and the same greedy tokens, on the
// demo model and on the goldens whose layers are sharded (KV heads replicated where there are more
// ranks than KV heads); each rank reads only its shard; a rank that fails at load or in a step
// takes the executor down with its error, never a hang; what is not sharded yet is refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"
#include "runner/tensor_parallel_executor.h"

namespace inferd {
namespace {

using testing_util::forward_all;
using testing_util::ints;

const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
const std::string kGoldens = testing_util::goldens_dir();

RunnerOptions options(int32_t max_batched = 256) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = max_batched;
  return o;
}

std::unique_ptr<ModelRunner> load_one(const std::string& dir, const RunnerOptions& o = options()) {
  return std::make_unique<ModelRunner>(dir, o, make_cpu_backend(1));
}

std::unique_ptr<TensorParallelExecutor> load_tp(const std::string& dir, int n,
                                                const RunnerOptions& o = options()) {
  TensorParallelOptions tp;
  tp.size = n;
  return std::make_unique<TensorParallelExecutor>(dir, o, std::move(tp));
}

// Largest |a - b| over |b|'s largest value (at least 1).
double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0, scale = 1;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d = std::max(d, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return d / scale;
}

// The golden's prompts (tokenized by tools/make_goldens.py).
std::vector<std::vector<int32_t>> golden_prompts(const std::string& name) {
  const auto gold = SafetensorsIndex::open_file(kGoldens + name + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i)
    prompts.push_back(ints(gold.get("prompt" + std::to_string(i) + ".ids")));
  return prompts;
}

// TP = n against TP = 1 on `prompts`: every position's logits (the prompts batched, in chunks of
// 5 tokens and of 64), then greedy continuations of each prompt.
void expect_same_as_one_rank(const std::string& dir, int n,
                             const std::vector<std::vector<int32_t>>& prompts, int32_t new_tokens,
                             const RunnerOptions& o = options()) {
  auto one = load_one(dir, o);
  auto tp = load_tp(dir, n, o);
  for (int32_t chunk : {64, 5}) {
    const auto want = forward_all(*one, prompts, chunk);
    const auto got = forward_all(*tp, prompts, chunk);
    for (size_t s = 0; s < prompts.size(); ++s)
      EXPECT_LT(max_diff(got[s], want[s]), 1e-4)
          << dir << " TP=" << n << " prompt " << s << " chunk " << chunk;
  }
  for (size_t s = 0; s < prompts.size(); ++s) {
    const auto want = greedy_generate(*one, prompts[s], new_tokens, 64);
    const auto got = greedy_generate(*tp, prompts[s], new_tokens, 64);
    EXPECT_EQ(got, want) << dir << " TP=" << n << " prompt " << s;
  }
}

TEST(TensorParallel, DemoModelTp2MatchesOneRank) {
  // The demo model has 6 heads and 2 KV heads: TP = 2 is the size that divides it.
  expect_same_as_one_rank(kDemo, 2, {{0, 311, 2041, 530, 1207}, {0, 17, 900, 45, 3000, 12, 7, 99}},
                          24);
}

TEST(TensorParallel, DemoModelTp2IsReproducible) {
  auto tp = load_tp(kDemo, 2);
  const std::vector<std::vector<int32_t>> prompts = {{0, 311, 2041, 530, 1207, 8, 9, 10}};
  const auto a = forward_all(*tp, prompts, 3);
  const auto b = forward_all(*tp, prompts, 3);
  EXPECT_EQ(a, b);  // bit for bit: the all-reduce sums in rank order
}

class TensorParallelGoldens : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(TensorParallelGoldens, LogitsAndGreedyTokensMatchOneRank) {
  const auto& [name, n] = GetParam();
  expect_same_as_one_rank(kGoldens + name, n, golden_prompts(name), 16);
}

// Llama 3 (2 KV heads: replicated at TP = 4), Qwen2 (qkv biases, tied embeddings), Qwen3 (per-head
// q/k norms), Mistral (sliding window), Gemma 3 (sandwich norms, scaled tied embedding, its second
// rope; gemma3_softcap: 1 KV head, soft-capped logits), Granite (multipliers, 1 KV head),
// llama_linear (4 KV heads: divided at TP = 4); the mixtures of experts (every expert with 1/N of
// its intermediate rows, the router whole): Mixtral (experts stacked as transformers 5 saves
// them), Qwen3-MoE (one tensor an expert, dense layers between).
INSTANTIATE_TEST_SUITE_P(Sharded, TensorParallelGoldens,
                         ::testing::Combine(::testing::Values("llama3", "qwen2", "qwen3", "mistral",
                                                              "gemma3", "gemma3_softcap", "granite",
                                                              "llama_linear", "mixtral",
                                                              "qwen3_moe"),
                                            ::testing::Values(2, 4)),
                         [](const ::testing::TestParamInfo<std::tuple<std::string, int>>& i) {
                           return std::get<0>(i.param) + "_tp" +
                                  std::to_string(std::get<1>(i.param));
                         });

TEST(TensorParallel, EachRankReadsItsShardOnly) {
  // llama_linear: 4 KV heads, vocabulary 320: every linear, the embedding and the lm_head divide
  // into 2 and 4 ranks without replication, so the shards add up to the model exactly.
  auto one = load_one(kGoldens + "llama_linear");
  const int64_t total = one->loaded_whole_bytes() + one->loaded_sharded_bytes();
  EXPECT_EQ(one->loaded_sharded_bytes(), 0);
  for (int n : {2, 4}) {
    auto tp = load_tp(kGoldens + "llama_linear", n);
    for (int r = 0; r < n; ++r) {
      const ModelRunner& m = tp->rank(r);
      // Whole on every rank: the norms (and o/down biases, none here).
      EXPECT_LT(m.loaded_whole_bytes(), total / 50) << "rank " << r << " of " << n;
      EXPECT_EQ(m.loaded_sharded_bytes() * n + m.loaded_whole_bytes(), total)
          << "rank " << r << " of " << n;
    }
  }
  // Llama 3 at TP = 4: 2 KV heads, each on two ranks; the rest is divided.
  auto l1 = load_one(kGoldens + "llama3");
  const int64_t l_total = l1->loaded_whole_bytes();
  auto l4 = load_tp(kGoldens + "llama3", 4);
  for (int r = 0; r < 4; ++r) {
    EXPECT_GT(l4->rank(r).loaded_sharded_bytes(), l_total / 4 * 9 / 10);
    EXPECT_LT(l4->rank(r).loaded_sharded_bytes(), l_total / 4 * 13 / 10);
  }
}

TEST(TensorParallel, KvHeadsAreDividedOrReplicated) {
  auto l2 = load_tp(kGoldens + "llama3", 2);
  EXPECT_EQ(l2->rank(1).model().kv_cache_spec()[0].num_kv_heads, 1);
  auto l4 = load_tp(kGoldens + "llama3", 4);
  EXPECT_EQ(l4->rank(3).model().kv_cache_spec()[0].num_kv_heads, 1);
  auto g4 = load_tp(kGoldens + "llama_linear", 4);
  EXPECT_EQ(g4->rank(0).model().kv_cache_spec()[0].num_kv_heads, 1);
  auto g2 = load_tp(kGoldens + "llama_linear", 2);
  EXPECT_EQ(g2->rank(0).model().kv_cache_spec()[0].num_kv_heads, 2);
}

std::string load_error(const std::string& dir, int n, const RunnerOptions& o = options()) {
  try {
    load_tp(dir, n, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TensorParallel, WhatIsNotShardedYetIsRefusedByName) {
  const struct {
    std::string dir;
    int n;
    std::string message;
  } cases[] = {
      {kDemo, 4, "the model's 6 attention heads do not divide into 4 ranks"},
      {kDemo, 3, "the model's 2 KV heads neither divide into 3 ranks nor replicate evenly"},
      {kGoldens + "phi3", 2, "attention with a fused qkv_proj (Phi-3) is not sharded yet"},
      {kGoldens + "olmo2", 2, "q/k norms over the whole projection (OLMo 2)"},
      {kGoldens + "gpt_oss", 2, "(gpt-oss) is not sharded yet"},
  };
  for (const auto& c : cases) {
    const std::string err = load_error(c.dir, c.n);
    EXPECT_NE(err.find("--tensor-parallel-size " + std::to_string(c.n)), std::string::npos) << err;
    EXPECT_NE(err.find(c.message), std::string::npos) << c.dir << ": " << err;
  }
  RunnerOptions lora = options();
  lora.max_loras = 1;
  EXPECT_NE(load_error(kDemo, 2, lora).find("LoRA adapters are not sharded yet"),
            std::string::npos);
}

// FP8 checkpoints (issue 33's quantized shards): transformers' 128x128-block "fp8" (blocks of 32
// here; the shards of the 172-row MLP do not fall on them) and compressed-tensors per tensor and
// per channel. On the CPU each rank's slice is dequantized with its own scales: TP = 2 and 4 give
// one rank's logits (1e-4) and greedy tokens.
TEST(TensorParallel, Fp8CheckpointsMatchOneRank) {
  const std::vector<std::vector<int32_t>> prompts = {{1, 17, 250, 3, 99, 42}, {1, 5, 6, 7}};
  for (const char* name : {"llama3_fp8_block", "llama3_ct_tensor", "llama3_ct_channel"}) {
    for (int n : {2, 4}) {
      expect_same_as_one_rank(std::string(INFERD_TEST_DATA_DIR) + "/fp8/" + name, n, prompts, 12);
    }
  }
}

// Integer weight-only checkpoints (AWQ, GPTQ with and without act-order, 8-bit, per channel,
// compressed-tensors): on the CPU each part is dequantized whole and sliced, so TP = 2 and 4 give
// one rank's logits and greedy tokens whatever the groups, the packing and the act-order.
TEST(TensorParallel, IntCheckpointsMatchOneRank) {
  const std::vector<std::vector<int32_t>> prompts = {{1, 17, 250, 3, 99, 42}, {1, 5, 6, 7}};
  for (const char* name :
       {"awq_g32", "awq_g64", "gptq_g32_actorder", "gptq_8bit_g32", "gptq_channel_v2",
        "gptq_g64_sym", "ct_channel_asym", "ct_group_actorder"}) {
    SCOPED_TRACE(name);
    expect_same_as_one_rank(std::string(INFERD_TEST_DATA_DIR) + "/int4/" + name, 2, prompts, 8);
  }
  expect_same_as_one_rank(std::string(INFERD_TEST_DATA_DIR) + "/int4/gptq_g32_actorder", 4, prompts,
                          8);
}

// --quantization fp8 (online, per output channel) on the CPU: the scales come from whole rows
// (a row-parallel rank quantizes the whole weight and keeps its columns; the experts likewise), so
// TP = 2 and 4 give one rank's logits and greedy tokens; and the weights really are FP8 values
// (not the unquantized model's logits).
TEST(TensorParallel, OnlineFp8MatchesOneRank) {
  RunnerOptions fp8 = options();
  fp8.load.quantization = "fp8";
  const auto prompts = golden_prompts("llama3");
  for (int n : {2, 4}) {
    auto one = load_one(kGoldens + "llama3", fp8);
    auto tp = load_tp(kGoldens + "llama3", n, fp8);
    const auto want = forward_all(*one, prompts, 64);
    const auto got = forward_all(*tp, prompts, 64);
    for (size_t s = 0; s < prompts.size(); ++s)
      EXPECT_LT(max_diff(got[s], want[s]), 1e-4) << "TP=" << n << " prompt " << s;
    for (size_t s = 0; s < prompts.size(); ++s)
      EXPECT_EQ(greedy_generate(*tp, prompts[s], 12, 64), greedy_generate(*one, prompts[s], 12, 64))
          << "TP=" << n << " prompt " << s;
  }
  // The experts too: rounded over whole rows, then sliced (stacked and one tensor an expert).
  for (const char* name : {"mixtral", "qwen3_moe"})
    expect_same_as_one_rank(kGoldens + name, 2, golden_prompts(name), 8, fp8);
  auto dense = load_one(kGoldens + "llama3");
  auto one = load_one(kGoldens + "llama3", fp8);
  EXPECT_GT(max_diff(forward_all(*one, prompts, 64)[0], forward_all(*dense, prompts, 64)[0]), 1e-3);
}

TEST(TensorParallel, ARankThatFailsToLoadFailsTheLoadNamingIt) {
  const auto t0 = std::chrono::steady_clock::now();
  TensorParallelOptions tp;
  tp.size = 4;
  tp.before_load = [](int rank) {
    if (rank == 2) throw Error("injected: rank two cannot read its shard");
  };
  try {
    TensorParallelExecutor e(kGoldens + "llama3", options(), std::move(tp));
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "tensor parallelism: rank 2 of 4: injected: rank two cannot read its shard");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60));
}

TEST(TensorParallel, ARankThatFailsInAStepBreaksTheGroupWithItsError) {
  RunnerOptions o = options();
  o.inject_device_fault_after_steps = 2;  // the last rank's third step fails
  auto tp = load_tp(kGoldens + "llama3", 2, o);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  EXPECT_NO_THROW(forward_all(*tp, {prompt}, 64));
  EXPECT_NO_THROW(forward_all(*tp, {prompt}, 64));
  const auto t0 = std::chrono::steady_clock::now();
  try {
    forward_all(*tp, {prompt}, 64);
    FAIL() << "the step ran";
  } catch (const DeviceFault& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("tensor-parallel rank 1 of 2: device fault on cpu"), std::string::npos) << m;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_THROW(tp->check_device(), DeviceFault);
  EXPECT_THROW(forward_all(*tp, {prompt}, 64), DeviceFault);  // broken for good, no hang
}

}  // namespace
}  // namespace inferd
