// Batched multi-LoRA on the CUDA backend (issue 29), against the CPU reference: the shrink and
// expand kernels (KernelOps::lora_add) on random slots and rows of awkward sizes; the peft goldens
// (tests/data/lora, tools/make_lora_goldens.py) within bf16 tolerance; a decode batch of three
// adapters and the base replayed from a CUDA graph (slots are data) giving each sequence the
// tokens it gets alone, and peft's first greedy tokens. Skips itself without a GPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "inferd/engine.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "model/lora/peft_adapter.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

const std::string kBase = std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3";
const std::string kLora = std::string(INFERD_TEST_DATA_DIR) + "/lora";
using testing_util::forward_all;
using testing_util::ints;

// One LoraLinear of `parts` output blocks on backend `be`, slots filled from host values.
LoraLinear make_lora_linear(Backend& be, int32_t slots, int64_t in, std::vector<int64_t> parts,
                            int64_t max_rank, const std::vector<float>& a,
                            const std::vector<float>& b) {
  LoraLinear l;
  l.num_parts = int32_t(parts.size());
  l.max_rank = max_rank;
  l.rank = l.num_parts * max_rank;
  l.in_features = in;
  int64_t end = 0;
  for (size_t p = 0; p < parts.size(); ++p) l.part_end[p] = end += parts[p];
  l.out_features = end;
  l.a = be.alloc(be.activation_dtype(), {slots, l.rank, in});
  l.b = be.alloc(be.activation_dtype(), {slots, l.out_features, l.rank});
  be.upload_f32(l.a, a);
  be.upload_f32(l.b, b);
  return l;
}

TEST(CudaLora, KernelsMatchTheCpuReference) {
  INFERD_REQUIRE_GPU();
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  Rng rng(29);
  const int32_t S = 3, T = 37;
  const int64_t max_rank = 16;
  StepCapacity cap;
  cap.max_tokens = 64;
  cap.max_blocks_per_seq = 8;
  cap.max_lora_columns = 3 * max_rank;
  gpu->reserve(cap);
  for (const auto& [in, parts] : std::vector<std::pair<int64_t, std::vector<int64_t>>>{
           {64, {64, 32, 32}}, {172, {64}}, {64, {172, 172}}, {4096, {1024}}}) {
    const int64_t R = int64_t(parts.size()) * max_rank;
    int64_t N = 0;
    for (int64_t p : parts) N += p;
    const Tensor ah = test::rand_host({S, R, in}, rng, 0.5f);
    const Tensor bh = test::rand_host({S, N, R}, rng, 0.5f);
    const std::vector<float> a(ah.data_as<float>(), ah.data_as<float>() + ah.numel());
    const std::vector<float> b(bh.data_as<float>(), bh.data_as<float>() + bh.numel());
    const LoraLinear lc = make_lora_linear(*cpu, S, in, parts, max_rank, a, b);
    const LoraLinear lg = make_lora_linear(*gpu, S, in, parts, max_rank, a, b);
    const Tensor x = test::rand_host({T, in}, rng);
    const Tensor out0 = test::rand_host({T, N}, rng);
    std::vector<int32_t> rows(T);
    for (int32_t t = 0; t < T; ++t) rows[size_t(t)] = int32_t(rng.next_u64() % (S + 1)) - 1;
    const ForwardBatch fb = test::make_batch({{0, T}}, 16, 8, rng);
    cpu->set_lora_rows(rows);
    const DeviceBatch& bc = cpu->prepare_batch(fb, 16);
    Tensor want = test::copy_host(out0);
    cpu->lora_add(x, lc, bc, want);
    gpu->set_lora_rows(rows);
    const DeviceBatch& bg = gpu->prepare_batch(fb, 16);
    const Tensor xd = cuda_upload(*gpu, x, DType::kBF16);
    Tensor od = cuda_upload(*gpu, out0, DType::kBF16);
    gpu->lora_add(xd, lg, bg, od);
    const Tensor got = cuda_download_f32(*gpu, od);
    const double err = test::rel_err(got, want);
    std::printf("[cuda-lora] in %ld out %ld parts %zu: rel err %.3e\n", long(in), long(N),
                parts.size(), err);
    EXPECT_LT(err, 1e-2) << "in " << in << " out " << N;
    // Base rows are untouched.
    for (int32_t t = 0; t < T; ++t) {
      if (rows[size_t(t)] >= 0) continue;
      for (int64_t n = 0; n < N; ++n)
        ASSERT_EQ(got.data_as<float>()[t * N + n],
                  bf16_to_f32(f32_to_bf16(out0.data_as<float>()[t * N + n])));
    }
  }
}

std::shared_ptr<ModelRunner> load_cuda(int32_t max_loras) {
  RunnerOptions o;
  o.num_kv_blocks = 128;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 8;
  o.max_loras = max_loras;
  return std::make_shared<ModelRunner>(kBase, o, make_cuda_backend(0));
}

TEST(CudaLora, PeftGoldensWithinBf16Tolerance) {
  INFERD_REQUIRE_GPU();
  auto m = load_cuda(2);
  const ModelConfig& cfg = m->config();
  m->add_lora_adapter(0,
                      std::make_shared<LoraAdapter>(load_peft_adapter(kLora + "/adapter_a", cfg)));
  m->add_lora_adapter(1,
                      std::make_shared<LoraAdapter>(load_peft_adapter(kLora + "/adapter_b", cfg)));
  const auto gold = SafetensorsIndex::open_file(kLora + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i)
    prompts.push_back(ints(gold.get("prompt" + std::to_string(i) + ".ids")));
  const std::vector<std::pair<std::string, int32_t>> models = {
      {"base", -1}, {"adapter_a", 0}, {"adapter_b", 1}};
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> ids;
  for (const auto& [name, id] : models)
    for (const auto& p : prompts) {
      seqs.push_back(p);
      ids.push_back(id);
    }
  const auto got = forward_all(*m, seqs, 7, ids);
  size_t s = 0;
  for (const auto& [name, id] : models) {
    double worst = 0;
    for (size_t i = 0; i < prompts.size(); ++i, ++s) {
      const Tensor ref = gold.get(name + ".prompt" + std::to_string(i) + ".logits");
      const double err = test::rel_err(got[s].data(), ref.data_as<float>(), got[s].size());
      worst = std::max(worst, err);
      EXPECT_LT(err, 2e-2) << name << " prompt " << i;
    }
    std::printf("[cuda-lora] %s: max rel err %.3e vs peft (mixed batch, chunks of 7)\n",
                name.c_str(), worst);
  }
}

TEST(CudaLora, GraphDecodeOfThreeAdaptersAndTheBaseEqualsEachAlone) {
  INFERD_REQUIRE_GPU();
  auto m = load_cuda(3);
  ASSERT_FALSE(m->graph_batch_sizes().empty());
  const ModelConfig& cfg = m->config();
  m->add_lora_adapter(0,
                      std::make_shared<LoraAdapter>(load_peft_adapter(kLora + "/adapter_a", cfg)));
  m->add_lora_adapter(1,
                      std::make_shared<LoraAdapter>(load_peft_adapter(kLora + "/adapter_b", cfg)));
  m->add_lora_adapter(2, std::make_shared<LoraAdapter>(random_lora_adapter(cfg, 8, 7)));
  const auto gold = SafetensorsIndex::open_file(kLora + "/golden.safetensors");
  const int pi = ints(gold.get("greedy.prompt_index"))[0];
  const auto prompt = ints(gold.get("prompt" + std::to_string(pi) + ".ids"));
  constexpr int32_t kTokens = 8;
  // Alone: eager forward() steps, one sequence.
  std::vector<std::vector<int32_t>> alone;
  for (int32_t id : {-1, 0, 1, 2})
    alone.push_back(greedy_generate(*m, prompt, kTokens, 64, {}, nullptr, id));
  // peft's first tokens (their margins are clear: tools/make_lora_goldens.py).
  const std::vector<std::string> names = {"base", "adapter_a", "adapter_b"};
  for (size_t k = 0; k < names.size(); ++k) {
    auto want = ints(gold.get(names[k] + ".greedy.tokens"));
    want.resize(kTokens);
    EXPECT_EQ(alone[k], want) << names[k];
  }
  // Together: one engine batch, decode steps replayed from the captured graphs.
  EngineConfig ec;
  ec.max_num_seqs = 8;
  ec.max_num_batched_tokens = 256;
  Engine engine(m, ec);
  engine.add_lora_adapter(
      0, std::make_shared<LoraAdapter>(load_peft_adapter(kLora + "/adapter_a", cfg)));
  engine.add_lora_adapter(
      1, std::make_shared<LoraAdapter>(load_peft_adapter(kLora + "/adapter_b", cfg)));
  engine.add_lora_adapter(2, std::make_shared<LoraAdapter>(random_lora_adapter(cfg, 8, 7)));
  std::vector<GenerateRequest> reqs;
  for (int32_t id : {-1, 0, 1, 2, 2, 1, 0, -1}) {
    GenerateRequest r;
    r.prompt_token_ids = prompt;
    r.params.temperature = 0.0f;
    r.params.max_tokens = kTokens;
    r.params.ignore_eos = true;
    r.lora_adapter_id = id;
    reqs.push_back(r);
  }
  const auto results = engine.generate(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const int32_t id = reqs[i].lora_adapter_id;
    EXPECT_EQ(results[i].outputs.at(0).token_ids, alone[size_t(id + 1)])
        << "request " << i << " adapter " << id;
  }
}

}  // namespace
}  // namespace inferd
