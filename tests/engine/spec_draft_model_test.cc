// Speculative decoding with a draft model (issue 26, method draft_model) on the CPU backend:
// greedy outputs are exactly those without speculation for k = 1..7, batched, with penalties,
// stop strings and a regex constraint, whether the draft is random (its drafts are mostly
// rejected: a different architecture, or a tiny 1-layer model with dummy weights) or the target
// itself (every draft accepted); the draft's KV follows the accepted tokens (a draft that is the
// target proposes what the target then produces); seeded sampled requests with sampled drafts
// are reproducible; a draft whose vocabulary differs from the target's is refused.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/spec_test_util.h"
#include "inferd/engine.h"
#include "llm/speculative_config.h"
#include "model/golden_util.h"
#include "runner/model_runner.h"
#include "tokenizer/tokenizer.h"

namespace inferd {
namespace {

std::shared_ptr<ModelRunner> load(const std::string& dir, bool dummy = false,
                                  bool sleep_mode = false) {
  RunnerOptions o;
  o.enable_sleep_mode = sleep_mode;
  o.num_kv_blocks = 256;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 8;
  if (dummy) {
    o.load.format = LoadFormat::kDummy;
    o.load.dummy_dtype = DType::kF32;
    o.load.dummy_seed = 7;
  }
  return std::make_shared<ModelRunner>(dir, o, make_cpu_backend(2));
}

EngineConfig config(std::shared_ptr<ModelExecutor> draft, int32_t k, int32_t max_model_len) {
  EngineConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;
  c.max_model_len = max_model_len;
  c.eos_token_ids = {1};
  if (draft) {
    c.speculative.method = SpeculativeConfig::Method::kDraftModel;
    c.speculative.draft_executor = std::move(draft);
    c.speculative.num_speculative_tokens = k;
    c.speculative.disable_by_batch_size = 0;
  }
  return c;
}

using test::expect_same_results;

std::vector<GenerateRequest> golden_requests(int32_t V) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    GenerateRequest r;
    r.request_id = fmt::format("g{}", i);
    for (int j = 0; j < 5 + 9 * i; ++j) r.prompt_token_ids.push_back((j * 37 + i * 11 + 3) % V);
    r.params.temperature = 0.0f;
    r.params.max_tokens = 18 + 3 * i;
    r.params.ignore_eos = true;
    if (i == 1) r.params.repetition_penalty = 1.3f;
    if (i == 2) r.params.n = 2;  // greedy n = 2: two identical sequences, drafted separately
    reqs.push_back(r);
  }
  return reqs;
}

TEST(SpecDraftModel, GreedyOutputsEqualThoseWithoutSpeculation) {
  const std::string dir = testing_util::goldens_dir();
  auto target = load(dir + "llama3");
  const std::vector<GenerateRequest> reqs = golden_requests(target->vocab_size());
  std::vector<GenerateResult> want;
  {
    Engine plain(target, config(nullptr, 0, 0));
    want = plain.generate(reqs);
  }
  // A random draft of another architecture (mostly rejected) and the target itself (accepted).
  for (const char* draft_name : {"qwen3", "llama3"}) {
    SCOPED_TRACE(draft_name);
    const bool self = std::string(draft_name) == "llama3";
    for (int32_t k = 1; k <= 7; ++k) {
      SCOPED_TRACE(::testing::Message() << "k " << k);
      Engine spec(target, config(load(dir + draft_name), k, 0));
      expect_same_results(want, spec.generate(reqs));
      const EngineStats s = spec.stats();
      EXPECT_GT(s.spec_num_drafts, 0);
      if (self) {
        // The target as its own draft: every draft agrees (the same fp32 arithmetic on the same
        // rows would be needed for all; at least nearly all must).
        EXPECT_GE(s.spec_num_accepted_tokens * 10, s.spec_num_draft_tokens * 9)
            << s.spec_num_accepted_tokens << " of " << s.spec_num_draft_tokens;
      }
    }
  }
}

// Sleep mode puts the draft model to sleep with the target (it would otherwise keep its weights
// and KV on the device) and wakes it with it; outputs after the wake are those before.
TEST(SpecDraftModel, DraftSleepsAndWakesWithTheTarget) {
  const std::string dir = testing_util::goldens_dir();
  auto target = load(dir + "llama3", false, true);
  const std::vector<GenerateRequest> reqs = golden_requests(target->vocab_size());
  for (int level : {1, 2}) {
    SCOPED_TRACE(level);
    auto draft = load(dir + "llama3", false, true);
    Engine spec(target, config(draft, 3, 0));
    const std::vector<GenerateResult> before = spec.generate(reqs);
    spec.sleep(level, 10);
    EXPECT_EQ(target->sleep_level(), level);
    EXPECT_EQ(draft->sleep_level(), level);
    spec.wake_up();
    EXPECT_EQ(target->sleep_level(), 0);
    EXPECT_EQ(draft->sleep_level(), 0);
    expect_same_results(before, spec.generate(reqs));
    EXPECT_GT(spec.stats().spec_num_accepted_tokens, 0);
  }
}

TEST(SpecDraftModel, PreemptionAndChunkedCatchUp) {
  // A target pool of 7 blocks for 5 sequences of up to 59 tokens: sequences are preempted and
  // recomputed (their draft KV is freed and caught up again); the draft's batch holds 16 tokens,
  // so its catch-up runs in chunks over several rounds.
  const std::string dir = testing_util::goldens_dir();
  auto big = load(dir + "llama3");
  const std::vector<GenerateRequest> reqs = golden_requests(big->vocab_size());
  std::vector<GenerateResult> want;
  {
    Engine plain(big, config(nullptr, 0, 0));
    want = plain.generate(reqs);
  }
  RunnerOptions small;
  small.num_kv_blocks = 7;
  small.block_size = 16;
  small.max_num_batched_tokens = 256;
  small.max_num_seqs = 8;
  auto target = std::make_shared<ModelRunner>(dir + "llama3", small, make_cpu_backend(2));
  for (const char* draft_name : {"qwen3", "llama3"}) {
    SCOPED_TRACE(draft_name);
    RunnerOptions d;
    d.num_kv_blocks = 40;
    d.block_size = 16;
    d.max_num_batched_tokens = 16;
    d.max_num_seqs = 8;
    auto draft = std::make_shared<ModelRunner>(dir + draft_name, d, make_cpu_backend(2));
    EngineConfig c = config(draft, 3, 0);
    c.max_num_batched_tokens = 32;
    Engine spec(target, c);
    expect_same_results(want, spec.generate(reqs));
    EXPECT_GT(spec.stats().preemptions, 0);
    EXPECT_GT(spec.stats().spec_num_drafts, 0);
  }
}

TEST(SpecDraftModel, DemoModelWithGrammarAndStopStrings) {
  const std::string demo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  auto tok = std::make_shared<const Tokenizer>(Tokenizer::from_dir(demo));
  std::vector<GenerateRequest> reqs;
  const char* prompts[] = {"And God said", "In the beginning", "The LORD is my shepherd",
                           "Blessed are"};
  for (int i = 0; i < 4; ++i) {
    GenerateRequest r;
    r.request_id = fmt::format("d{}", i);
    r.prompt_token_ids = tok->encode(prompts[i], true);
    r.params.temperature = 0.0f;
    r.params.max_tokens = 20 + 4 * i;
    if (i == 1) r.params.stop = {"LORD", " and the"};
    if (i == 2) {
      StructuredOutputs so;
      so.regex = "[A-Za-z ,;:]{10,60}\\.";
      r.params.structured_outputs = so;
    }
    if (i == 3) r.params.ignore_eos = true;
    reqs.push_back(r);
  }
  auto target = load(demo);
  std::vector<GenerateResult> want;
  {
    Engine plain(target, config(nullptr, 0, 1024), tok);
    want = plain.generate(reqs);
  }
  const std::string tiny = std::string(INFERD_TEST_DATA_DIR) + "/spec_draft_tiny";
  for (int32_t k : {1, 2, 3, 4, 5, 6, 7}) {
    SCOPED_TRACE(::testing::Message() << "k " << k);
    Engine random_draft(target, config(load(tiny, true), k, 1024), tok);
    expect_same_results(want, random_draft.generate(reqs));
  }
  for (int32_t k : {1, 4, 7}) {
    SCOPED_TRACE(::testing::Message() << "self, k " << k);
    Engine self_draft(target, config(load(demo), k, 1024), tok);
    expect_same_results(want, self_draft.generate(reqs));
    EXPECT_GT(self_draft.stats().spec_num_accepted_tokens, 0);
  }
  // The committed draft of the demo model (models/demo-draft, trained on the GPU machine): most of
  // its greedy drafts are taken (held-out top-1 agreement 0.67), and the outputs are the same.
  for (int32_t k : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << "demo-draft, k " << k);
    Engine trained(target, config(load(demo + "-draft"), k, 1024), tok);
    expect_same_results(want, trained.generate(reqs));
    const EngineStats st = trained.stats();
    EXPECT_GT(4 * st.spec_num_accepted_tokens, st.spec_num_draft_tokens);  // > 25 %
    std::cout << "demo-draft, k " << k << ": " << st.spec_num_accepted_tokens << " of "
              << st.spec_num_draft_tokens << " drafts accepted\n";
  }
}

TEST(SpecDraftModel, SeededSampledRequestsAreReproducible) {
  const std::string dir = testing_util::goldens_dir();
  auto target = load(dir + "llama3");
  std::vector<GenerateRequest> reqs = golden_requests(target->vocab_size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].params.temperature = 0.9f;
    reqs[i].params.top_p = 0.95f;
    reqs[i].params.seed = 100 + int64_t(i);
  }
  std::vector<GenerateResult> first;
  int64_t accepted = 0, drafted = 0;
  for (int run = 0; run < 2; ++run) {
    // The target as its draft: q is close to p, so sampled drafts are often accepted.
    Engine spec(target, config(load(dir + "llama3"), 4, 0));
    std::vector<GenerateResult> got = spec.generate(reqs);
    if (run == 0) {
      first = got;
      accepted = spec.stats().spec_num_accepted_tokens;
      drafted = spec.stats().spec_num_draft_tokens;
    } else {
      expect_same_results(first, got);
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, drafted);  // some sampled drafts are rejected (q != p after top-p)
  for (size_t i = 0; i < first.size(); ++i)  // ignore_eos: every output is max_tokens long
    for (const auto& o : first[i].outputs)
      EXPECT_EQ(int32_t(o.token_ids.size()), reqs[i].params.max_tokens);
}

TEST(SpecDraftModel, DraftWithAnotherVocabularyIsRefused) {
  auto target = load(testing_util::goldens_dir() + "llama3");          // 320 tokens
  auto draft = load(std::string(INFERD_SOURCE_DIR) + "/models/demo");  // 4096 tokens
  try {
    Engine e(target, config(draft, 4, 0));
    FAIL() << "a draft with 4096 tokens was accepted for a 320-token target";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary has 4096 tokens, the target's 320"),
              std::string::npos)
        << e.what();
  }
}

TEST(SpecDraftModel, DraftWithAnotherTokenizerIsRefused) {
  namespace fs = std::filesystem;
  const std::string demo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  const fs::path dir = fs::temp_directory_path() / fmt::format("spec_draft_tok_{}", ::getpid());
  fs::create_directories(dir);
  std::ifstream in(demo + "/tokenizer.json");
  nlohmann::json j = nlohmann::json::parse(in);
  // Two tokens swap ids: same size, another vocabulary.
  auto& v = j["model"]["vocab"];
  std::string a, b;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->get<int64_t>() == 100) a = it.key();
    if (it->get<int64_t>() == 101) b = it.key();
  }
  v[a] = 101;
  v[b] = 100;
  std::ofstream(dir / "tokenizer.json") << j.dump();
  EXPECT_NO_THROW(check_draft_vocabulary(demo, demo));
  try {
    check_draft_vocabulary(demo, dir.string());
    FAIL() << "a draft tokenizer with swapped ids was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("differs from the target's"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(check_draft_vocabulary(demo, (dir / "missing").string()), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace inferd
