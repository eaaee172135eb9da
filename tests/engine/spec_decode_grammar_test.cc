// Speculative decoding with structured outputs (issue 26): drafts are cut where the grammar
// refuses them, each verification row is masked by the grammar's state after the drafts before
// it, and the grammar ends where the tokens taken leave it. Every request gives exactly what it
// gives without speculation, on a fake model whose logits repeat a pattern (drafts accepted) or
// are pseudo-random (drafts rejected), greedy and seeded.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "engine/fake_model.h"
#include "engine/spec_test_util.h"
#include "inferd/engine.h"
#include "tokenizer/tokenizer.h"

namespace inferd {
namespace {

using testing::FakeExecutor;
using testing::FakeModelSpec;

// Printable ASCII one token each (' ' is 0, 'a' is 65), a few pieces, and an EOS special token.
std::shared_ptr<const Tokenizer> tiny_tokenizer(int32_t* eos_id) {
  nlohmann::json vocab = nlohmann::json::object();
  int32_t id = 0;
  for (char c = ' '; c <= '~'; ++c) vocab[std::string(1, c)] = id++;
  for (const char* piece : {"{\"", "\":", "\",", "true", "false", "12", "\"}", "ab", "\n"}) {
    if (!vocab.contains(piece)) vocab[piece] = id++;
  }
  *eos_id = id;
  nlohmann::json tj = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
      {"decoder", {{"type", "Fuse"}}},
      {"added_tokens", {{{"id", id}, {"content", "</s>"}, {"special", true}}}}};
  return std::make_shared<const Tokenizer>(Tokenizer::from_json(tj));
}

int32_t id_of(char c) {
  return int32_t(c - ' ');
}

std::vector<GenerateResult> run(bool scripted, int32_t k, const std::vector<GenerateRequest>& reqs,
                                EngineStats* stats) {
  int32_t eos = 0;
  auto tok = tiny_tokenizer(&eos);
  FakeModelSpec spec;
  spec.vocab = eos + 1;
  spec.max_model_len = 512;
  spec.num_blocks = 1024;
  // "abc," over and over where the grammar allows it.
  if (scripted) spec.script = {id_of('a'), id_of('b'), id_of('c'), id_of(',')};
  EngineConfig cfg;
  cfg.eos_token_ids = {eos};
  if (k > 0) {
    cfg.speculative.method = SpeculativeConfig::Method::kNgram;
    cfg.speculative.num_speculative_tokens = k;
    cfg.speculative.prompt_lookup_min = 1;
    cfg.speculative.prompt_lookup_max = 4;
    cfg.speculative.disable_by_batch_size = 0;
  }
  Engine engine(std::make_shared<FakeExecutor>(spec), cfg, tok);
  auto out = engine.generate(reqs);
  *stats = engine.stats();
  return out;
}

std::vector<GenerateRequest> requests() {
  std::vector<GenerateRequest> reqs;
  const std::vector<std::string> patterns = {"(abc,){2,30}abd", "[a-c,]{5,80}",
                                             "(abc,|ab,c|xyz){1,20}"};
  for (size_t i = 0; i < 12; ++i) {
    GenerateRequest r;
    r.request_id = fmt::format("g{}", i);
    // The prompt holds the pattern and text the grammar refuses, for the n-gram lookup.
    r.prompt_token_ids = {id_of('a'), id_of('b'), id_of('c'), id_of(','), id_of('a'),
                          id_of('b'), id_of('x'), id_of('a'), id_of('b'), id_of('c')};
    r.params.temperature = i % 3 == 0 ? 0.0f : 0.9f;
    r.params.seed = 11 + i;
    r.params.max_tokens = 30 + int32_t(i) * 7;
    r.params.logprobs = i % 4 == 1 ? 2 : -1;
    if (r.params.logprobs < 0) r.params.logprobs.reset();
    StructuredOutputs so;
    so.regex = patterns[i % patterns.size()];
    r.params.structured_outputs = so;
    reqs.push_back(r);
  }
  GenerateRequest n2 = reqs[1];
  n2.request_id = "n2";
  n2.params.n = 2;
  reqs.push_back(n2);
  return reqs;
}

TEST(SpecDecodeGrammar, OutputsEqualThoseWithoutSpeculation) {
  for (bool scripted : {true, false}) {
    EngineStats base_stats;
    const auto want = run(scripted, 0, requests(), &base_stats);
    for (int32_t k : {1, 3, 7}) {
      SCOPED_TRACE(::testing::Message() << "scripted " << scripted << " k " << k);
      EngineStats stats;
      const auto got = run(scripted, k, requests(), &stats);
      test::expect_same_results(want, got);
      EXPECT_GT(stats.spec_num_drafts, 0);
      if (scripted) {
        EXPECT_GT(stats.spec_num_accepted_tokens, 0);
      }
    }
  }
  // The outputs follow their grammars (the fake model alone would not).
  EngineStats stats;
  const auto reqs = requests();
  const auto got = run(true, 4, reqs, &stats);
  int complete = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const std::regex re(*reqs[i].params.structured_outputs->regex);
    for (const auto& s : got[i].outputs) {
      if (s.finish_reason != FinishReason::kStop) continue;
      EXPECT_TRUE(std::regex_match(s.text, re)) << s.text;
      ++complete;
    }
  }
  EXPECT_GT(complete, 0);
}

}  // namespace
}  // namespace inferd
