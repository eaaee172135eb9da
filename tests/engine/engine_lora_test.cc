// The engine with LoRA adapters (issue 29) on the CPU model: requests of two PEFT adapters
// (tests/data/lora, tools/make_lora_goldens.py) and of the base, sharing a prompt prefix, batched
// through one adapter slot: greedy tokens equal each alone (so the scheduler keeps to --max-loras
// and a prefix computed with one adapter is never reused by another), and an unknown or removed
// adapter id is refused at submit.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "core/error.h"
#include "inferd/engine.h"
#include "model/lora/peft_adapter.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

const std::string kBase = fmt::format("{}/goldens/llama3", INFERD_TEST_DATA_DIR);
const std::string kLora = fmt::format("{}/lora", INFERD_TEST_DATA_DIR);

std::shared_ptr<ModelRunner> load(int32_t max_loras) {
  RunnerOptions o;
  o.num_kv_blocks = 96;
  o.block_size = 4;
  o.max_num_batched_tokens = 64;
  o.max_loras = max_loras;
  return std::make_shared<ModelRunner>(kBase, o, make_cpu_backend(2));
}

std::shared_ptr<const LoraAdapter> adapter(const std::string& name, const ModelConfig& cfg) {
  return std::make_shared<LoraAdapter>(load_peft_adapter(kLora + "/" + name, cfg));
}

TEST(EngineLora, MixedAdaptersThroughOneSlotEqualEachAlone) {
  auto ref = load(2);
  const ModelConfig& cfg = ref->config();
  ref->add_lora_adapter(0, adapter("adapter_a", cfg));
  ref->add_lora_adapter(1, adapter("adapter_b", cfg));
  auto m = load(1);
  EngineConfig ec;
  ec.max_num_seqs = 8;
  ec.max_num_batched_tokens = 64;
  Engine engine(m, ec);
  engine.add_lora_adapter(10, adapter("adapter_a", cfg));
  engine.add_lora_adapter(11, adapter("adapter_b", cfg));
  std::vector<int32_t> shared;
  for (int i = 0; i < 12; ++i) shared.push_back(3 + (i * 37) % 300);
  std::vector<GenerateRequest> reqs;
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; i < 9; ++i) {
    const int32_t id = i % 3 - 1;  // base, adapter_a, adapter_b, ...
    std::vector<int32_t> prompt = shared;
    for (int k = 0; k <= i; ++k) prompt.push_back(5 + (i * 11 + k * 7) % 300);
    GenerateRequest r;
    r.prompt_token_ids = prompt;
    r.params.temperature = 0.0f;
    r.params.max_tokens = 6;
    r.params.ignore_eos = true;
    r.lora_adapter_id = id < 0 ? -1 : 10 + id;
    reqs.push_back(r);
    want.push_back(greedy_generate(*ref, prompt, 6, 64, {}, nullptr, id));
  }
  const auto results = engine.generate(reqs);
  for (size_t i = 0; i < reqs.size(); ++i)
    EXPECT_EQ(results[i].outputs[0].token_ids, want[i]) << "request " << i;
  // The three differ (the adapters change the model).
  EXPECT_NE(want[0], want[1]);
  EXPECT_NE(want[1], want[2]);

  GenerateRequest bad = reqs[0];
  bad.lora_adapter_id = 12;
  EXPECT_THROW(engine.generate({bad}), InvalidRequestError);
  engine.remove_lora_adapter(11);
  bad.lora_adapter_id = 11;
  EXPECT_THROW(engine.generate({bad}), InvalidRequestError);
  EXPECT_EQ(engine.generate({reqs[1]})[0].outputs[0].token_ids, want[1]);
}

TEST(EngineLora, RefusedWithoutLoraSlots) {
  auto m = load(0);
  EngineConfig ec;
  ec.max_num_batched_tokens = 64;
  Engine engine(m, ec);
  EXPECT_THROW(engine.add_lora_adapter(0, nullptr), Error);
  GenerateRequest r;
  r.prompt_token_ids = {5, 6, 7};
  r.lora_adapter_id = 0;
  EXPECT_THROW(engine.generate({r}), InvalidRequestError);
}

}  // namespace
}  // namespace inferd
