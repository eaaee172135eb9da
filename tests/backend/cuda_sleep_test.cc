// Sleep mode on the GPU (issue 31): after a level-1 sleep cudaMemGetInfo shows at least the
// weights' and the KV pool's bytes free again, and the wake (weights copied back to the same
// addresses) gives bit-identical tokens with the CUDA graphs captured at start-up replaying; a
// level-2 sleep frees them too and the wake (dummy weights made anew, graphs captured again) gives
// the same tokens. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/rng.h"
#include "cuda_test_util.h"
#include "inferd/engine.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

const std::string kDir = std::string(INFERD_SOURCE_DIR) + "/models/configs/qwen2.5-0.5b";

RunnerOptions sleep_options() {
  RunnerOptions o;
  o.load.format = LoadFormat::kDummy;
  o.load.dummy_seed = 5;
  o.num_kv_blocks = 2048;  // 24 layers x 2 x 2048 x 16 x 2 x 64 x 2 bytes: 384 MiB
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 8;
  o.enable_sleep_mode = true;
  return o;
}

// Greedy and seeded rows, decode steps through the graphs.
std::vector<std::vector<int32_t>> run(Engine& engine, int32_t vocab) {
  Rng rng(11);
  std::vector<GenerateRequest> reqs(6);
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateRequest& r = reqs[i];
    for (int j = 0; j < 20 + int(i) * 7; ++j)
      r.prompt_token_ids.push_back(int32_t(rng.next_u64() % uint64_t(vocab)));
    r.params.max_tokens = 24;
    r.params.ignore_eos = true;
    r.params.detokenize = false;
    r.params.temperature = i < 4 ? 0.0f : 0.8f;
    r.params.seed = 100 + i;
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& g : engine.generate(std::move(reqs))) {
    EXPECT_TRUE(g.error.empty()) << g.error;
    out.push_back(g.outputs.at(0).token_ids);
  }
  return out;
}

// Bytes of the model's bf16 matrices (embedding, tied lm_head, attention, MLP): the least a sleep
// frees besides the KV pool.
int64_t matrix_bytes(const ModelConfig& c) {
  const int64_t H = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const int64_t layer = H * q + 2 * H * kv + q * H + 3 * H * c.intermediate_size;
  return 2 * (c.vocab_size * H + c.num_layers * layer);
}

EngineConfig engine_config() {
  EngineConfig ec;
  ec.max_num_seqs = 8;
  ec.max_num_batched_tokens = 256;
  return ec;
}

class CudaSleep : public ::testing::TestWithParam<int> {};

TEST_P(CudaSleep, FreesTheMemoryAndWakesToIdenticalTokens) {
  INFERD_REQUIRE_GPU();
  const int level = GetParam();
  auto model = std::make_shared<ModelRunner>(kDir, sleep_options(), make_cuda_backend(0));
  ASSERT_FALSE(model->graph_batch_sizes().empty());
  Engine engine(model, engine_config());
  const auto before = run(engine, model->vocab_size());
  int64_t free0 = 0, free1 = 0, free2 = 0, total = 0;
  ASSERT_TRUE(model->backend().memory_info(&free0, &total));
  engine.sleep(level, 10);
  ASSERT_TRUE(model->backend().memory_info(&free1, &total));
  const int64_t want = matrix_bytes(model->config()) + model->kv_cache_bytes();
  std::printf("[cuda-golden] sleep level %d: %.1f MiB freed (weight matrices %.1f + KV %.1f MiB)\n",
              level, double(free1 - free0) / 1048576.0,
              double(matrix_bytes(model->config())) / 1048576.0,
              double(model->kv_cache_bytes()) / 1048576.0);
  EXPECT_GE(free1 - free0, want);
  engine.wake_up();
  ASSERT_TRUE(model->backend().memory_info(&free2, &total));
  EXPECT_LT(std::abs(free2 - free0), int64_t(64) << 20);  // the same memory taken again
  EXPECT_EQ(model->sleep_level(), 0);
  ASSERT_FALSE(model->graph_batch_sizes().empty());
  EXPECT_EQ(run(engine, model->vocab_size()), before);
  // A second round (level 1 reuses the pinned copy made by the first).
  engine.sleep(level, 10);
  engine.wake_up();
  EXPECT_EQ(run(engine, model->vocab_size()), before);
}

INSTANTIATE_TEST_SUITE_P(Levels, CudaSleep, ::testing::Values(1, 2));

TEST(CudaSleepMode, OffWithoutTheOption) {
  INFERD_REQUIRE_GPU();
  RunnerOptions o = sleep_options();
  o.enable_sleep_mode = false;
  o.num_kv_blocks = 64;
  ModelRunner model(kDir, o, make_cuda_backend(0));
  EXPECT_THROW(model.sleep(1), Error);
  EXPECT_EQ(model.sleep_level(), 0);
}

// Sleep-mode memory is unmapped when freed, and cuMemUnmap (unlike cudaFree) does not wait for
// the device: a weight part filled on the device and dropped at once (the parts of a merged
// linear) must not fault the kernels still queued on it.
TEST(CudaSleepMode, MemoryFreedWhileKernelsAreQueuedDoesNotFault) {
  INFERD_REQUIRE_GPU();
  std::unique_ptr<Backend> be = make_cuda_backend(0);
  ASSERT_TRUE(be->enable_sleep_mode());
  be->set_memory_tag(MemoryTag::kWeights);
  const std::vector<int64_t> big = {8192, 16384};  // 256 MiB of bf16: a fill of ~0.1 ms
  for (int i = 0; i < 8; ++i) {
    Tensor t = cuda_random_tensor(*be, DType::kBF16, big, uint64_t(i), 0.02f, 0.0f);
    Tensor small =
        cuda_random_tensor(*be, DType::kBF16, std::vector<int64_t>{64, 64}, 7, 0.02f, 0.0f);
  }  // each freed while its fill may still run
  be->set_memory_tag(MemoryTag::kOther);
  EXPECT_NO_THROW(cuda_synchronize(*be));
}

}  // namespace
}  // namespace inferd
