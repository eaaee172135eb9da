// Structured outputs through the engine: a fake model whose logits are pseudo-random (so only the
// grammar can make the output valid), a small real Tokenizer (single characters plus
// multi-character JSON pieces), and constraints of each kind. Every output that ends with "stop"
// must be in the constraint's language; n > 1, forced lengths (ignore_eos), start_after_token and
// bad constraints are checked too.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "engine/fake_model.h"
#include "inferd/engine.h"
#include "tokenizer/tokenizer.h"

namespace inferd {
namespace {

using testing::FakeExecutor;
using testing::FakeModelSpec;

// Printable ASCII one token each, some multi-character pieces, and an EOS special token.
std::shared_ptr<const Tokenizer> tiny_tokenizer(int32_t* eos_id) {
  nlohmann::json vocab = nlohmann::json::object();
  int32_t id = 0;
  for (char c = ' '; c <= '~'; ++c) vocab[std::string(1, c)] = id++;
  for (const char* piece : {"{\"", "\":", "\",", "true", "false", "null", "12", "000", "\"}", "ab",
                            "yes", "no", " \"", "-0", ".5", "e+", "\n"}) {
    if (!vocab.contains(piece)) vocab[piece] = id++;
  }
  *eos_id = id;
  nlohmann::json tj = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
      {"decoder", {{"type", "Fuse"}}},
      {"added_tokens", {{{"id", id}, {"content", "</s>"}, {"special", true}}}}};
  return std::make_shared<const Tokenizer>(Tokenizer::from_json(tj));
}

class EngineStructured : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = tiny_tokenizer(&eos_);
    FakeModelSpec spec;
    spec.vocab = eos_ + 1;
    spec.max_model_len = 1024;
    spec.num_blocks = 4096;
    EngineConfig cfg;
    cfg.max_num_seqs = 16;
    cfg.eos_token_ids = {eos_};
    engine_ = std::make_unique<Engine>(std::make_shared<FakeExecutor>(spec), cfg, tok_);
  }

  GenerateRequest request(StructuredOutputs so, uint64_t seed, int32_t max_tokens = 300) {
    GenerateRequest r;
    r.prompt_token_ids = {1, 2, 3, int32_t(seed % 50)};
    r.params.temperature = seed % 4 == 0 ? 0.0f : 1.0f;
    r.params.seed = seed;
    r.params.max_tokens = max_tokens;
    r.params.structured_outputs = std::move(so);
    return r;
  }

  // Runs `count` requests; returns the texts that ended with "stop" (asserting at least `min_stop`
  // of them did).
  std::vector<std::string> run(const StructuredOutputs& so, int count, double min_stop = 0.9) {
    std::vector<GenerateRequest> reqs;
    for (int i = 0; i < count; ++i) reqs.push_back(request(so, uint64_t(i) * 7919 + 1));
    std::vector<std::string> texts;
    for (const auto& g : engine_->generate(std::move(reqs))) {
      EXPECT_TRUE(g.error.empty()) << g.error;
      for (const auto& s : g.outputs) {
        if (s.finish_reason == FinishReason::kStop) texts.push_back(s.text);
      }
    }
    EXPECT_GE(double(texts.size()), min_stop * count) << texts.size() << " of " << count;
    return texts;
  }

  int32_t eos_ = 0;
  std::shared_ptr<const Tokenizer> tok_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineStructured, ChoiceGivesOneOfTheChoices) {
  StructuredOutputs so;
  so.choice = std::vector<std::string>{"yes", "no", "maybe not", "abc\"d"};
  std::set<std::string> seen;
  for (const auto& t : run(so, 40, 1.0)) {
    EXPECT_TRUE(t == "yes" || t == "no" || t == "maybe not" || t == "abc\"d") << t;
    seen.insert(t);
  }
  EXPECT_GE(seen.size(), 2u) << "random logits should pick different choices";
}

TEST_F(EngineStructured, RegexIsMatchedInFull) {
  StructuredOutputs so;
  so.regex = "[0-9]{3}-[a-z]{2,5}(x|yz)?";
  const std::regex re("[0-9]{3}-[a-z]{2,5}(x|yz)?");
  for (const auto& t : run(so, 40)) EXPECT_TRUE(std::regex_match(t, re)) << t;
}

TEST_F(EngineStructured, JsonSchemaOutputsParseAndValidate) {
  StructuredOutputs so;
  so.json = R"({"type": "object", "properties": {
      "a": {"type": "integer", "minimum": -5, "maximum": 300},
      "b": {"type": "boolean"},
      "c": {"enum": ["x", 2, null]}},
    "required": ["a", "b", "c"], "additionalProperties": false})";
  for (const auto& t : run(so, 40)) {
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(t)) << t;
    ASSERT_TRUE(j.is_object()) << t;
    ASSERT_TRUE(j["a"].is_number_integer()) << t;
    EXPECT_GE(j["a"].get<int64_t>(), -5) << t;
    EXPECT_LE(j["a"].get<int64_t>(), 300) << t;
    EXPECT_TRUE(j["b"].is_boolean()) << t;
    EXPECT_TRUE(j["c"] == "x" || j["c"] == 2 || j["c"].is_null()) << t;
    EXPECT_EQ(j.size(), 3u) << t;
  }
}

TEST_F(EngineStructured, JsonObjectAndGrammarAndSeveralSequences) {
  StructuredOutputs obj;
  obj.json_object = true;
  // Free-form JSON objects may run long under random logits: only check what ended.
  for (const auto& t : run(obj, 12, 0.0)) {
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(t)) << t;
    EXPECT_TRUE(j.is_object()) << t;
  }
  StructuredOutputs g;
  g.grammar = "root ::= \"(\" digit+ (\",\" digit+)* \")\"\ndigit ::= [0-9]\n";
  GenerateRequest r = request(g, 99);
  r.params.n = 4;
  r.params.temperature = 1.0f;
  const std::regex re("\\([0-9]+(,[0-9]+)*\\)");
  const auto res = engine_->generate({r});
  ASSERT_EQ(res[0].outputs.size(), 4u);
  for (const auto& s : res[0].outputs) {
    if (s.finish_reason == FinishReason::kStop) {
      EXPECT_TRUE(std::regex_match(s.text, re)) << s.text;
    } else {
      EXPECT_TRUE(std::regex_match(s.text, std::regex("\\([0-9,]*"))) << s.text;
    }
  }
}

TEST_F(EngineStructured, ForcedLengthGivesEosAfterTheGrammarEnds) {
  StructuredOutputs so;
  so.choice = std::vector<std::string>{"yes", "no"};
  GenerateRequest r = request(so, 5, 12);
  r.params.ignore_eos = true;
  r.params.min_tokens = 12;
  const auto res = engine_->generate({r});
  const SequenceResult& s = res[0].outputs[0];
  EXPECT_EQ(s.finish_reason, FinishReason::kLength);
  ASSERT_EQ(s.token_ids.size(), 12u);
  EXPECT_TRUE(s.text == "yes" || s.text == "no") << s.text;
  EXPECT_EQ(s.token_ids.back(), eos_);
}

TEST_F(EngineStructured, ConstraintStartsAfterTheGivenToken) {
  // Free text until '#' is generated (the model is pushed towards it by a bias), then digits.
  StructuredOutputs so;
  so.regex = "[0-9]+";
  const auto hash = tok_->token_to_id("#");
  ASSERT_TRUE(hash.has_value());
  so.start_after_token = *hash;
  GenerateRequest r = request(so, 3, 200);
  r.params.temperature = 0.0f;
  r.params.logit_bias = {{*hash, 3.0f}};
  const auto res = engine_->generate({r});
  const SequenceResult& s = res[0].outputs[0];
  const auto at = s.text.find('#');
  ASSERT_NE(at, std::string::npos) << s.text;
  const std::string after = s.text.substr(at + 1);
  EXPECT_TRUE(std::regex_match(after, std::regex("\n{0,2}[0-9]*"))) << s.text;
  // Up to two newlines may open the constrained part (reasoning models write them after
  // </think>), no more.
  r.params.logit_bias = {{*hash, 50.0f}, {*tok_->token_to_id("\n"), 40.0f}};
  const auto nl = engine_->generate({r});
  const std::string& t = nl[0].outputs[0].text;
  ASSERT_NE(t.find("#\n\n"), std::string::npos) << t;
  EXPECT_TRUE(std::regex_match(t.substr(t.find('#') + 1), std::regex("\n\n[0-9]*"))) << t;
}

TEST_F(EngineStructured, BeginTokensComeFirstThenTheGrammar) {
  StructuredOutputs so;
  so.choice = std::vector<std::string>{"yes", "no"};
  so.begin_tokens = {*tok_->token_to_id("["), *tok_->token_to_id("!")};
  for (const auto& t : run(so, 20, 1.0)) EXPECT_TRUE(t == "[!yes" || t == "[!no") << t;
  StructuredOutputs bad = so;
  bad.begin_tokens = {eos_ + 100};
  EXPECT_THROW(engine_->submit(request(bad, 1), [](RequestOutput&&) {}), InvalidRequestError);
}

TEST_F(EngineStructured, AnAmbiguousGrammarFailsItsRequestOnly) {
  // 2^k parses after k "a"s (pushed by a bias): the request fails with the grammar's error once
  // the matcher's bound is passed; the engine goes on serving.
  StructuredOutputs so;
  so.grammar = "root ::= r\nr ::= \"a\" r \"b\" | \"a\" r \"c\" | \"\"\n";
  GenerateRequest r = request(so, 1, 100);
  r.params.temperature = 0.0f;
  r.params.logit_bias = {{*tok_->token_to_id("a"), 30.0f}};
  const auto res = engine_->generate({r});
  EXPECT_NE(res[0].error.find("too ambiguous"), std::string::npos) << res[0].error;
  EXPECT_EQ(res[0].outputs[0].finish_reason, FinishReason::kAbort);
  StructuredOutputs ok;
  ok.choice = std::vector<std::string>{"yes"};
  const auto after = engine_->generate({request(ok, 2)});
  EXPECT_TRUE(after[0].error.empty());
  EXPECT_EQ(after[0].outputs[0].text, "yes");
}

TEST_F(EngineStructured, BadConstraintsAreInvalidRequests) {
  auto submit = [&](StructuredOutputs so) {
    return engine_->submit(request(std::move(so), 1), [](RequestOutput&&) {});
  };
  StructuredOutputs bad_json;
  bad_json.json = "{not json";
  EXPECT_THROW(submit(bad_json), InvalidRequestError);
  StructuredOutputs unsupported;
  unsupported.json = R"({"type": "object", "patternProperties": {"a": {}}})";
  try {
    submit(unsupported);
    ADD_FAILURE() << "patternProperties was accepted";
  } catch (const InvalidRequestError& e) {
    EXPECT_NE(std::string(e.what()).find("patternProperties"), std::string::npos) << e.what();
  }
  StructuredOutputs two;
  two.regex = "a";
  two.json_object = true;
  EXPECT_THROW(submit(two), InvalidRequestError);
  StructuredOutputs bad_grammar;
  bad_grammar.grammar = "root ::= undefined-rule";
  EXPECT_THROW(submit(bad_grammar), InvalidRequestError);
  StructuredOutputs none;
  EXPECT_THROW(submit(none), InvalidRequestError);
}

// --grammar-compile-timeout: a constraint that takes longer to compile is refused as an invalid
// request naming the limit; the same constraint under a generous limit compiles.
TEST_F(EngineStructured, ACompileOverTheTimeLimitIsAnInvalidRequest) {
  FakeModelSpec spec;
  spec.vocab = eos_ + 1;
  spec.max_model_len = 1024;
  spec.num_blocks = 4096;
  EngineConfig cfg;
  cfg.eos_token_ids = {eos_};
  cfg.grammar_compile_timeout_s = 1e-9;
  Engine strict(std::make_shared<FakeExecutor>(spec), cfg, tok_);
  StructuredOutputs so;
  so.json =
      R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}})";
  try {
    strict.submit(request(so, 1), [](RequestOutput&&) {});
    ADD_FAILURE() << "a compile over the limit was accepted";
  } catch (const InvalidRequestError& e) {
    EXPECT_NE(std::string(e.what()).find("--grammar-compile-timeout"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("1e-09 s"), std::string::npos) << e.what();
  }
  strict.shutdown();
  EXPECT_EQ(engine_->config().grammar_compile_timeout_s, 10);  // the default
  const auto texts = run(so, 4, 0.5);
  EXPECT_FALSE(texts.empty());
}

}  // namespace
}  // namespace inferd
