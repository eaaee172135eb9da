// The whole decoder on the CUDA backend: the goldens in tests/data/goldens (bf16 logits within
// 2e-2 relative error of the fp32 reference at every position, alone and batched in chunks; the
// first 8 greedy tokens identical), and a real-shaped dummy model against the CPU backend with the
// same weights. Prints one "[cuda-golden] ..." line per check for scripts/gpu-check.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cuda_test_util.h"
#include "model/decoder.h"
#include "model/golden_util.h"
#include "model/safetensors.h"
#include "model/simple_generate.h"

namespace inferd {
namespace {

const std::string kGoldens = testing_util::goldens_dir();
using testing_util::forward_all;
using testing_util::ints;
constexpr double kLogitTol = 2e-2;
constexpr size_t kGreedyTokens = 8;

std::unique_ptr<DecoderModel> load_cuda(const std::string& dir, int32_t max_batched) {
  ModelOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = max_batched;
  return std::make_unique<DecoderModel>(dir, o, make_cuda_backend(0));
}

class CudaGoldens : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { INFERD_REQUIRE_GPU(); }
};

TEST_P(CudaGoldens, LogitsWithinBf16ToleranceAloneAndBatched) {
  auto m = load_cuda(kGoldens + GetParam(), 64);
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
      EXPECT_LT(err, kLogitTol) << GetParam() << " prompt " << i << " (" << prompts[i].size()
                                << " tokens) chunk " << chunk;
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

INSTANTIATE_TEST_SUITE_P(AllArchitectures, CudaGoldens,
                         ::testing::Values("llama3", "llama32_tied", "mistral", "qwen2", "qwen3"));

// A real-shaped model (Qwen2.5-0.5B: qkv bias, tied embeddings, GQA 7, head_dim 64, vocab 152k)
// with the same dummy bf16 weights on both backends: a prefill batch of two sequences, then a
// decode step of both.
TEST(CudaModel, DummyQwen05BMatchesCpuBackend) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen2.5-0.5b";
  ModelOptions o;
  o.load_format = LoadFormat::kDummy;
  o.dummy_seed = 3;
  o.num_kv_blocks = 16;
  o.block_size = 16;
  o.max_num_batched_tokens = 64;
  const int threads = int(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  DecoderModel gpu(dir, o, make_cuda_backend(0));
  DecoderModel cpu(dir, o, make_cpu_backend(threads));
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

}  // namespace
}  // namespace inferd
