// --speculative-config (vLLM's JSON): what is accepted, vLLM's defaults, and the error that
// names the field for everything else.
#include <gtest/gtest.h>

#include "llm/speculative_config.h"

namespace inferd {
namespace {

std::string error_of(const std::string& json) {
  try {
    parse_speculative_config(json);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SpeculativeConfig, NgramWithVllmDefaults) {
  EXPECT_FALSE(parse_speculative_config("").enabled());
  SpeculativeConfig c =
      parse_speculative_config(R"({"method": "ngram", "num_speculative_tokens": 4})");
  EXPECT_TRUE(c.enabled());
  EXPECT_EQ(c.method, SpeculativeConfig::Method::kNgram);
  EXPECT_EQ(c.num_speculative_tokens, 4);
  EXPECT_EQ(c.prompt_lookup_min, 5);
  EXPECT_EQ(c.prompt_lookup_max, 5);
  EXPECT_EQ(c.disable_by_batch_size, 32);
  c = parse_speculative_config(
      R"({"method": "ngram", "num_speculative_tokens": 7, "prompt_lookup_max": 4,
          "draft_tensor_parallel_size": 1, "disable_by_batch_size": 0})");
  EXPECT_EQ(c.prompt_lookup_min, 4);
  EXPECT_EQ(c.prompt_lookup_max, 4);
  EXPECT_EQ(c.disable_by_batch_size, 0);
  c = parse_speculative_config(
      R"({"model": "[ngram]", "num_speculative_tokens": 2, "prompt_lookup_min": 2})");
  EXPECT_EQ(c.prompt_lookup_min, 2);
  EXPECT_EQ(c.prompt_lookup_max, 2);
  c = parse_speculative_config(
      R"({"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_min": 1,
          "prompt_lookup_max": 6})");
  EXPECT_EQ(c.prompt_lookup_min, 1);
  EXPECT_EQ(c.prompt_lookup_max, 6);
}

TEST(SpeculativeConfig, DraftModel) {
  SpeculativeConfig c = parse_speculative_config(
      R"({"method": "draft_model", "model": "/d", "num_speculative_tokens": 5})");
  EXPECT_EQ(c.method, SpeculativeConfig::Method::kDraftModel);
  EXPECT_EQ(c.model, "/d");
  EXPECT_EQ(c.num_speculative_tokens, 5);
  // vLLM's inference: a "model" that is not "ngram" is a draft's path.
  c = parse_speculative_config(R"({"model": "/e", "num_speculative_tokens": 3})");
  EXPECT_EQ(c.method, SpeculativeConfig::Method::kDraftModel);
  EXPECT_EQ(c.model, "/e");
}

TEST(SpeculativeConfig, Eagle3) {
  const SpeculativeConfig c = parse_speculative_config(
      R"({"method": "eagle3", "model": "/h", "num_speculative_tokens": 3})");
  EXPECT_EQ(c.method, SpeculativeConfig::Method::kEagle3);
  EXPECT_EQ(c.model, "/h");
  EXPECT_EQ(c.num_speculative_tokens, 3);
}

TEST(SpeculativeConfig, ErrorsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"{", "--speculative-config: not valid JSON"},
      {"[1]", "expected a JSON object"},
      {R"({"num_speculative_tokens": 3})", "\"method\" is missing"},
      {R"({"method": "medusa", "num_speculative_tokens": 3})", "unknown \"method\" \"medusa\""},
      {R"({"method": "ngram"})", "\"num_speculative_tokens\" is missing"},
      {R"({"method": "ngram", "num_speculative_tokens": 0})",
       "\"num_speculative_tokens\" is 0: expected 1..16"},
      {R"({"method": "ngram", "num_speculative_tokens": "4"})",
       "\"num_speculative_tokens\" must be an integer"},
      {R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 5,
           "prompt_lookup_max": 2})",
       "\"prompt_lookup_min\" 5 is larger than \"prompt_lookup_max\" 2"},
      {R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 0})",
       "\"prompt_lookup_min\" is 0"},
      {R"({"method": "ngram", "num_speculative_tokens": 4, "temperature": 1})",
       "unknown field \"temperature\""},
      {R"({"method": "ngram", "num_speculative_tokens": 4, "draft_tensor_parallel_size": 2})",
       "\"draft_tensor_parallel_size\" 2: only 1"},
      {R"({"method": "ngram", "model": "/some/draft", "num_speculative_tokens": 4})",
       "method ngram takes no \"model\""},
      {R"({"method": "draft_model", "num_speculative_tokens": 4})",
       "method draft_model needs \"model\""},
      {R"({"method": "draft_model", "model": "/d"})", "\"num_speculative_tokens\" is missing"},
      {R"({"model": "/d", "num_speculative_tokens": 4, "prompt_lookup_max": 3})",
       "\"prompt_lookup_max\" is for method ngram, not draft_model"},
      {R"({"method": "eagle3", "num_speculative_tokens": 4})",
       "method eagle3 needs \"model\" (the EAGLE-3 head's path)"},
      {R"({"method": "eagle3", "model": "/h", "num_speculative_tokens": 4, "prompt_lookup_max": 2})",
       "\"prompt_lookup_max\" is for method ngram, not eagle3"},
      {R"({"method": "eagle", "model": "/h", "num_speculative_tokens": 4})",
       "method \"eagle\" (EAGLE-1/2 heads) is not supported"},
      {R"({"method": "ngram", "num_speculative_tokens": 4, "disable_by_batch_size": -1})",
       "\"disable_by_batch_size\" is -1"},
  };
  for (const auto& [json, want] : cases) {
    const std::string e = error_of(json);
    EXPECT_NE(e.find("--speculative-config"), std::string::npos) << json << ": " << e;
    EXPECT_NE(e.find(want), std::string::npos) << json << ": " << e;
  }
}

}  // namespace
}  // namespace inferd
