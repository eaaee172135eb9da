// Speculative decoding (issue 26) on real models, CPU backend: the demo model (prompts from
// bench/data/demo_quotes.jsonl, with stop strings, max_tokens, a regex constraint and seeded
// sampling) and the tiny random golden models give exactly the outputs they give without
// speculation, for k = 1..7, batched.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "backend/backend.h"
#include "engine/spec_test_util.h"
#include "inferd/engine.h"
#include "model/golden_util.h"
#include "runner/model_runner.h"
#include "tokenizer/tokenizer.h"

namespace inferd {
namespace {

std::shared_ptr<ModelRunner> load(const std::string& dir) {
  RunnerOptions o;
  o.num_kv_blocks = 256;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 8;
  return std::make_shared<ModelRunner>(dir, o, make_cpu_backend(2));
}

EngineConfig config(int32_t k, int32_t max_model_len = 1024) {
  EngineConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;  // chunked prefill of the longer prompts
  c.max_model_len = max_model_len;
  c.eos_token_ids = {1};
  if (k > 0) {
    c.speculative.method = SpeculativeConfig::Method::kNgram;
    c.speculative.num_speculative_tokens = k;
    c.speculative.prompt_lookup_min = 1;
    c.speculative.prompt_lookup_max = 4;
    c.speculative.disable_by_batch_size = 0;
  }
  return c;
}

using test::expect_same_results;

TEST(SpecDecodeModel, DemoModelOutputsEqualThoseWithoutSpeculation) {
  const std::string demo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  auto tok = std::make_shared<const Tokenizer>(Tokenizer::from_dir(demo));
  std::ifstream in(std::string(INFERD_SOURCE_DIR) + "/bench/data/demo_quotes.jsonl");
  std::vector<GenerateRequest> reqs;
  std::string line;
  for (int i = 0; std::getline(in, line) && i < 6; ++i) {
    GenerateRequest r;
    r.request_id = fmt::format("q{}", i);
    r.prompt_token_ids =
        tok->encode(nlohmann::json::parse(line)["prompt"].get<std::string>(), true);
    r.params.temperature = 0.0f;
    r.params.max_tokens = 24 + 9 * i;
    if (i == 1) r.params.stop = {"LORD", " and the"};
    if (i == 2) {
      r.params.temperature = 0.7f;
      r.params.top_p = 0.9f;
      r.params.seed = 42;
    }
    if (i == 3) {
      StructuredOutputs so;
      so.regex = "[A-Za-z ,;:]{10,80}\\.";
      r.params.structured_outputs = so;
    }
    if (i == 4) r.params.ignore_eos = true;
    if (i == 5) r.params.repetition_penalty = 1.2f;
    reqs.push_back(r);
  }
  ASSERT_EQ(reqs.size(), 6u);
  auto model = load(demo);
  std::vector<GenerateResult> want;
  {
    Engine plain(model, config(0), tok);
    want = plain.generate(reqs);
  }
  for (int32_t k = 1; k <= 7; ++k) {
    SCOPED_TRACE(::testing::Message() << "k " << k);
    Engine spec(model, config(k), tok);
    expect_same_results(want, spec.generate(reqs));
    EXPECT_GT(spec.stats().spec_num_accepted_tokens, 0);
  }
}

TEST(SpecDecodeModel, GoldenModelsOutputsEqualThoseWithoutSpeculation) {
  for (const std::string& name : testing_util::golden_models()) {
    SCOPED_TRACE(name);
    auto model = load(testing_util::goldens_dir() + name);
    const int32_t V = model->vocab_size();
    std::vector<GenerateRequest> reqs;
    for (int i = 0; i < 4; ++i) {
      GenerateRequest r;
      r.request_id = fmt::format("g{}", i);
      // A repeated stretch: the n-gram lookup proposes from it.
      std::vector<int32_t> seg;
      for (int j = 0; j < 7 + i; ++j) seg.push_back((j * 37 + i * 11 + 3) % V);
      for (int rep = 0; rep < 3; ++rep)
        r.prompt_token_ids.insert(r.prompt_token_ids.end(), seg.begin(), seg.end());
      r.params.temperature = 0.0f;
      r.params.max_tokens = 20;
      r.params.ignore_eos = true;
      reqs.push_back(r);
    }
    std::vector<GenerateResult> want;
    {
      Engine plain(model, config(0, 0));
      want = plain.generate(reqs);
    }
    for (int32_t k : {1, 2, 4, 7}) {
      SCOPED_TRACE(::testing::Message() << "k " << k);
      Engine spec(model, config(k, 0));
      expect_same_results(want, spec.generate(reqs));
      EXPECT_GT(spec.stats().spec_num_drafts, 0);
    }
  }
}

}  // namespace
}  // namespace inferd
