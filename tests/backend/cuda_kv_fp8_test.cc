// The FP8 KV cache on the GPU (issue 24, --kv-cache-dtype fp8): the demo model with an FP8 cache
// on CUDA against the CPU backend's FP8 cache (the reference: keys and values rounded to e4m3 as
// they are written) — a prefill's logits (the prefill kernel), decode steps (the split-KV decode
// kernel, graphs and eager), a verification-shaped step (the per-sequence decode blocks), the
// checkpoint's scales, and half the bytes a block of the bf16 cache. Skipped without a GPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda_test_util.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using test::rel_err;
const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

RunnerOptions options(bool fp8, bool eager) {
  RunnerOptions o;
  o.num_kv_blocks = 128;
  o.block_size = 16;
  o.max_num_batched_tokens = 1024;
  o.max_num_seqs = 4;
  o.kv_cache_fp8 = fp8;
  o.enforce_eager = eager;
  return o;
}

// Logits of every row of a batch (a prompt in one forward: the prefill kernel reads the cache
// it wrote).
std::vector<float> logits_of(ModelRunner& m, const ForwardBatch& b) {
  std::vector<float> logits(b.logit_rows.size() * size_t(m.vocab_size()));
  m.forward(b, logits.data());
  return logits;
}

// One prompt of n random ids (blocks from a shuffled pool of 64).
ForwardBatch prompt_batch(int32_t n, int32_t vocab, uint64_t seed) {
  Rng rng(seed);
  return test::make_batch({{0, n}}, 16, 64, rng, vocab);
}

class CudaFp8KvCache : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_GPU();
    setenv("INFERD_CUDA_FP8_KV", "1", 1);  // the kernels are gated until this test has passed
  }
};

TEST_F(CudaFp8KvCache, PrefillAndDecodeMatchTheCpuReference) {
  ModelRunner cpu(kDemo, options(true, true), make_cpu_backend(2));
  ModelRunner gpu(kDemo, options(true, false), make_cuda_backend(0));
  ModelRunner gpu_bf16(kDemo, options(false, false), make_cuda_backend(0));
  const ForwardBatch b = prompt_batch(150, cpu.vocab_size(), 5);
  const std::vector<float> ref = logits_of(cpu, b), got = logits_of(gpu, b),
                           bf = logits_of(gpu_bf16, b);
  const double err = rel_err(got.data(), ref.data(), ref.size());
  const double err_bf16 = rel_err(bf.data(), ref.data(), ref.size());
  std::printf("[cuda-kv-fp8] prefill logits vs the CPU's fp8 cache: fp8 %.2e, bf16 cache %.2e\n",
              err, err_bf16);
  EXPECT_LT(err, 3e-2);
  // Greedy decoding (decode graphs, then eager): the CPU's tokens.
  const std::vector<int32_t> prompt(b.token_ids.begin(), b.token_ids.begin() + 40);
  const std::vector<int32_t> want = greedy_generate(cpu, prompt, 24, 64);
  EXPECT_EQ(greedy_generate(gpu, prompt, 24, 64), want);
  ModelRunner eager(kDemo, options(true, true), make_cuda_backend(0));
  EXPECT_EQ(greedy_generate(eager, prompt, 24, 64), want);
  // Prefill in chunks of 5 (sequences of a few new tokens: the per-sequence decode blocks).
  EXPECT_EQ(greedy_generate(gpu, prompt, 8, 5), greedy_generate(cpu, prompt, 8, 5));
  // The same bytes a block as the CPU's fp8 cache; half the bf16 cache's.
  EXPECT_EQ(gpu.kv_cache_bytes() / gpu.num_kv_blocks() * 2,
            gpu_bf16.kv_cache_bytes() / gpu_bf16.num_kv_blocks());
}

TEST_F(CudaFp8KvCache, CheckpointScalesMatchTheCpuReference) {
  const fs::path dir = fs::temp_directory_path() / ("inferd_cuda_kv_" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
    fs::create_symlink(fs::path(kDemo) / f, dir / f);
  fs::create_symlink(fs::path(kDemo) / "model.safetensors", dir / "weights.safetensors");
  std::vector<std::pair<std::string, Tensor>> t;
  for (int i = 0; i < 6; ++i) {
    for (auto [name, v] : {std::pair{"k_scale", 0.5f}, std::pair{"v_scale", 0.03f}}) {
      Tensor x = Tensor::empty_host(DType::kF32, {1});
      x.data_as<float>()[0] = v;
      t.emplace_back("model.layers." + std::to_string(i) + ".self_attn." + name, x);
    }
  }
  write_safetensors((dir / "kv_scales.safetensors").string(), t);
  ModelRunner cpu(dir.string(), options(true, true), make_cpu_backend(2));
  ModelRunner gpu(dir.string(), options(true, false), make_cuda_backend(0));
  ModelRunner plain(kDemo, options(true, true), make_cpu_backend(2));
  const ForwardBatch b = prompt_batch(90, cpu.vocab_size(), 6);
  const std::vector<float> ref = logits_of(cpu, b), got = logits_of(gpu, b),
                           unscaled = logits_of(plain, b);
  const double err = rel_err(got.data(), ref.data(), ref.size());
  std::printf(
      "[cuda-kv-fp8] scaled cache (k 0.5, v 0.03): %.2e vs the CPU; scale 1 differs by "
      "%.2e\n",
      err, rel_err(unscaled.data(), ref.data(), ref.size()));
  EXPECT_LT(err, 3e-2);
  const std::vector<int32_t> prompt(b.token_ids.begin(), b.token_ids.begin() + 30);
  EXPECT_EQ(greedy_generate(gpu, prompt, 16, 64), greedy_generate(cpu, prompt, 16, 64));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace inferd
