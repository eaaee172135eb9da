// A Qwen3-Embedding-style checkpoint (tests/data/goldens_embed/qwen3_embedding: bare-decoder
// tensor names, no lm_head, sentence-transformers modules with last-token pooling + Normalize)
// loaded as a user would (`LLM::load`, --task auto) and its embeddings against transformers'
// (tools/make_embedding_golden.py): LAST from the model's own pooling config, MEAN by request,
// under chunked prefill and prefix-cache hits. CPU here (1e-4); the CUDA backend in
// tests/backend/cuda_model_test.cc.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "inferd/engine_args.h"
#include "inferd/llm.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"

namespace inferd {
namespace {

const std::string kDir = std::string(INFERD_TEST_DATA_DIR) + "/goldens_embed/qwen3_embedding";

TEST(EmbeddingGolden, Qwen3EmbeddingMatchesTransformers) {
  EngineArgs args;
  args.model.model = kDir;
  args.model.device = "cpu";
  args.model.skip_tokenizer_init = true;  // the tiny model has no tokenizer: token ids only
  args.model.threads = 2;
  args.scheduler.max_num_batched_tokens = 16;  // prompts of 21 and 80 tokens run in chunks
  auto llm = LLM::load(args);
  const EngineConfig& cfg = llm->engine()->config();
  ASSERT_EQ(cfg.task, ModelTask::kEmbed);  // --task auto found modules.json
  EXPECT_EQ(cfg.pooling.type, PoolingType::kLast);
  EXPECT_TRUE(cfg.pooling.normalize);
  const auto gold = SafetensorsIndex::open_file(kDir + "/golden.safetensors");
  int checked = 0;
  for (int round = 0; round < 2; ++round) {  // the second round hits the prefix cache
    for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
      const std::string p = "prompt" + std::to_string(i);
      GenerateRequest r;
      r.prompt_token_ids = testing_util::ints(gold.get(p + ".ids"));
      r.pooling.emplace();  // the model's: LAST, normalised
      GenerateRequest mean = r;
      mean.pooling->type = PoolingType::kMean;
      const auto res = llm->engine()->generate({r, mean});
      for (const auto& [k, got] :
           {std::pair{".last", res[0].embedding}, {".mean", res[1].embedding}}) {
        const Tensor want = gold.get(p + k);
        ASSERT_EQ(got.size(), size_t(want.numel())) << p << k;
        EXPECT_LT(testing_util::rel_err(got.data(), want.data_as<float>(), got.size()), 1e-4)
            << p << k << " round " << round;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 16);
}

}  // namespace
}  // namespace inferd
