// Prompt logprobs through the HTTP server (fake generator): lm-evaluation-harness's request shape
// (/v1/completions, echo + logprobs, max_tokens 1 and 0) read as lm-eval reads it, text offsets
// over prompt and output, streaming echo, vLLM's prompt_logprobs field on completions and chat,
// and the 400s (streamed prompt_logprobs, out of range).
#include <gtest/gtest.h>

#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;

class PromptLogprobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig cfg;
    gen_ = std::make_shared<FakeGenerator>();
    cfg.served_model_names = {"tiny"};
    port_ = start_test_server(cfg, gen_, server_);
  }
  void TearDown() override {
    server_->stop();
    gen_->shutdown();
  }
  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

// The fake tokenizer: BOS (1) then one token per byte (id = byte + 3).
std::vector<int32_t> ids_of(const std::string& s) {
  std::vector<int32_t> v;
  for (unsigned char c : s) v.push_back(int32_t(c) + 3);
  return v;
}

// lm-eval's loglikelihood request with the prompt as token ids: token_logprobs[ctxlen:-1] are the
// continuation's, from the prompt's own logprobs; is_greedy compares each with its top entry.
TEST_F(PromptLogprobsTest, LmEvalLoglikelihoodShape) {
  const std::vector<int32_t> prompt = ids_of("the cat sat");
  const size_t ctxlen = 4;  // "the " is the context
  for (int max_tokens : {1, 0}) {
    SCOPED_TRACE(max_tokens);
    json body = {{"model", "tiny"}, {"prompt", prompt},         {"echo", true},
                 {"logprobs", 1},   {"max_tokens", max_tokens}, {"temperature", 0}};
    const HttpResult r = post(port_, "/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    const json choice = r.json()["choices"][0];
    const json& lp = choice["logprobs"];
    const size_t n = prompt.size() + size_t(max_tokens);
    ASSERT_EQ(lp["token_logprobs"].size(), n);
    EXPECT_TRUE(lp["token_logprobs"][0].is_null());
    EXPECT_TRUE(lp["top_logprobs"][0].is_null());
    EXPECT_EQ(lp["tokens"][0], "t");
    double sum = 0;
    for (size_t p = ctxlen; p < prompt.size(); ++p) {
      EXPECT_DOUBLE_EQ(lp["token_logprobs"][p].get<double>(), double(fake_prompt_logprob(p)));
      EXPECT_EQ(lp["tokens"][p], std::string(1, "the cat sat"[p]));
      // The token itself is among the top_logprobs (as OpenAI shows them).
      EXPECT_TRUE(lp["top_logprobs"][p].contains(lp["tokens"][p].get<std::string>()));
      sum += lp["token_logprobs"][p].get<double>();
    }
    double want = 0;
    for (size_t p = ctxlen; p < prompt.size(); ++p) want += fake_prompt_logprob(p);
    EXPECT_DOUBLE_EQ(sum, want);
    // text_offset: 0, 1, 2, ... over the prompt's token texts, then on into the output.
    for (size_t p = 0; p < n; ++p) EXPECT_EQ(lp["text_offset"][p], p);
    EXPECT_EQ(choice["finish_reason"], "length");
    EXPECT_EQ(choice["text"], max_tokens == 0 ? "the cat sat" : "the cat satH");
    EXPECT_EQ(r.json()["usage"]["completion_tokens"], max_tokens);
    EXPECT_EQ(gen_->last_request().params.prompt_logprobs, 1);
    EXPECT_FALSE(choice.contains("prompt_logprobs"));  // only when asked by that name
  }
}

TEST_F(PromptLogprobsTest, StreamedEchoCarriesThePromptLogprobs) {
  json body = {{"model", "tiny"}, {"prompt", "abc"}, {"echo", true},
               {"logprobs", 0},   {"max_tokens", 2}, {"stream", true}};
  const auto ev = sse_events(post(port_, "/v1/completions", body).body);
  ASSERT_GE(ev.size(), 3u);
  const json first = json::parse(ev[0])["choices"][0];
  EXPECT_EQ(first["text"], "abc");
  const json& lp = first["logprobs"];
  // Text prompts get BOS: "<s>", "a", "b", "c".
  EXPECT_EQ(lp["tokens"], json::array({"<s>", "a", "b", "c"}));
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_DOUBLE_EQ(lp["token_logprobs"][3].get<double>(), double(fake_prompt_logprob(3)));
  EXPECT_EQ(lp["text_offset"], json::array({0, 3, 4, 5}));
  const json next = json::parse(ev[1])["choices"][0];
  EXPECT_EQ(next["text"], "H");
  EXPECT_EQ(next["logprobs"]["text_offset"], json::array({6}));
}

// vLLM's prompt_logprobs: null first, then {id: {logprob, rank, decoded_token}} with the token
// and its alternatives; on chat at the top of the response.
TEST_F(PromptLogprobsTest, VllmPromptLogprobsField) {
  json body = {{"model", "tiny"}, {"prompt", "ab"}, {"prompt_logprobs", 2}, {"max_tokens", 1}};
  json j = post(port_, "/v1/completions", body).json();
  const json& pl = j["choices"][0]["prompt_logprobs"];
  ASSERT_EQ(pl.size(), 3u);  // <s> a b
  EXPECT_TRUE(pl[0].is_null());
  const json& b = pl[2][std::to_string(3 + 'b')];
  EXPECT_DOUBLE_EQ(b["logprob"].get<double>(), double(fake_prompt_logprob(2)));
  EXPECT_EQ(b["rank"], fake_prompt_rank(2));
  EXPECT_EQ(b["decoded_token"], "b");
  // The token and 2 alternatives ('a' and 'b' in the fake), the token counted once.
  EXPECT_EQ(pl[2].size(), 2u);
  EXPECT_EQ(pl[2][std::to_string(3 + 'a')]["rank"], 1);
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  json chat = {{"model", "tiny"},
               {"messages", {{{"role", "user"}, {"content", "x"}}}},
               {"prompt_logprobs", 0},
               {"max_tokens", 1}};
  j = post(port_, "/v1/chat/completions", chat).json();
  ASSERT_TRUE(j["prompt_logprobs"].is_array());
  EXPECT_EQ(j["prompt_logprobs"].size(), gen_->last_request().prompt_token_ids.size());
}

TEST_F(PromptLogprobsTest, BadRequestsNameTheField) {
  auto error_param = [&](json body) {
    const HttpResult r = post(port_, "/v1/completions", body);
    EXPECT_EQ(r.status, 400) << r.body;
    return r.json()["error"]["param"];
  };
  EXPECT_EQ(error_param({{"prompt", "a"}, {"prompt_logprobs", 1}, {"stream", true}}),
            "prompt_logprobs");
  EXPECT_EQ(error_param({{"prompt", "a"}, {"prompt_logprobs", 21}}), "prompt_logprobs");
  EXPECT_EQ(error_param({{"prompt", "a"}, {"prompt_logprobs", -1}}), "prompt_logprobs");
  EXPECT_EQ(error_param({{"prompt", "a"}, {"max_tokens", -1}}), "max_tokens");
}

}  // namespace
}  // namespace inferd::server::testing
