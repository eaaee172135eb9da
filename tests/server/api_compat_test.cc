// OpenAI's and vLLM's defaults and extras that tools rely on (issue 30, item 6), through the server
// against the fake generator: completions' default max_tokens, logprobs 0, temperature above 2,
// truncate_prompt_tokens, a request's own chat_template behind --trust-request-chat-template,
// SageMaker's /ping and /invocations, and /v1/models listing each served name once.
#include <gtest/gtest.h>

#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;

class ApiCompatTest : public ::testing::Test {
 protected:
  void start() { start(ServerConfig()); }
  void start(const ServerConfig& c) {
    ServerConfig cfg = c;
    gen_ = std::make_shared<FakeGenerator>(FakeConfig());
    if (cfg.served_model_names.empty()) cfg.served_model_names = {"tiny", "tiny-alias"};
    port_ = start_test_server(cfg, gen_, server_);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (gen_) gen_->shutdown();
  }
  json chat(const std::string& content) {
    return {{"messages", {{{"role", "user"}, {"content", content}}}}, {"max_tokens", 3}};
  }

  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

void expect_400(const HttpResult& r, const std::string& param) {
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["param"], param) << r.body;
}

TEST_F(ApiCompatTest, CompletionsDefaultToSixteenTokensChatToTheContext) {
  start();
  json j = post(port_, "/v1/completions", json{{"prompt", "hi"}}).json();
  EXPECT_EQ(j["usage"]["completion_tokens"], 16);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(gen_->last_request().params.max_tokens, 16);
  // Never past the context: a prompt 5 tokens short of max_model_len (256) gets 5.
  j = post(port_, "/v1/completions", json{{"prompt", std::string(250, 'a')}}).json();
  EXPECT_EQ(j["usage"]["completion_tokens"], 5) << j;
  // Chat keeps "up to the context": no max_tokens reaches the engine.
  ASSERT_EQ(post(port_, "/v1/chat/completions",
                 json{{"messages", {{{"role", "user"}, {"content", "x"}}}}})
                .status,
            200);
  EXPECT_FALSE(gen_->last_request().params.max_tokens.has_value());
}

TEST_F(ApiCompatTest, LogprobsZeroGivesTheSampledTokensLogprob) {
  start();
  json body = {{"prompt", "q"}, {"max_tokens", 2}, {"logprobs", 0}};
  json lp = post(port_, "/v1/completions", body).json()["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"H", "e"}));
  EXPECT_EQ(lp["token_logprobs"], json::array({-0.25, -0.25}));
  EXPECT_EQ(lp["top_logprobs"], json::parse(R"([{"H": -0.25}, {"e": -0.25}])"));
  // Streamed alike.
  body["stream"] = true;
  const auto events = sse_events(post(port_, "/v1/completions", body).body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(json::parse(events[0])["choices"][0]["logprobs"]["top_logprobs"],
            json::parse(R"([{"H": -0.25}])"));
}

TEST_F(ApiCompatTest, TemperatureAnyValueAtLeastZero) {
  start();
  json body = chat("hi");
  body["temperature"] = 3.5;
  ASSERT_EQ(post(port_, "/v1/chat/completions", body).status, 200);
  EXPECT_FLOAT_EQ(gen_->last_request().params.temperature, 3.5f);
  body["temperature"] = -0.5;
  expect_400(post(port_, "/v1/chat/completions", body), "temperature");
}

TEST_F(ApiCompatTest, TruncatePromptTokensKeepsTheLastTokens) {
  start();
  // "abcdefgh" with BOS is 9 tokens; the last 3 are "fgh".
  json body = {
      {"prompt", "abcdefgh"}, {"max_tokens", 2}, {"echo", true}, {"truncate_prompt_tokens", 3}};
  json j = post(port_, "/v1/completions", body).json();
  EXPECT_EQ(gen_->last_request().prompt_token_ids, gen_->encode("fgh", false));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["choices"][0]["text"], "fghHe");
  // -1: max_model_len, which this prompt fits; token-id prompts too.
  body = {
      {"prompt", json::array({10, 11, 12, 13})}, {"max_tokens", 1}, {"truncate_prompt_tokens", -1}};
  ASSERT_EQ(post(port_, "/v1/completions", body).status, 200);
  EXPECT_EQ(gen_->last_request().prompt_token_ids, (std::vector<int32_t>{10, 11, 12, 13}));
  body["truncate_prompt_tokens"] = 2;
  ASSERT_EQ(post(port_, "/v1/completions", body).status, 200);
  EXPECT_EQ(gen_->last_request().prompt_token_ids, (std::vector<int32_t>{12, 13}));
  // A prompt longer than the context passes once truncated.
  body = {{"prompt", std::string(400, 'a')}, {"max_tokens", 1}, {"truncate_prompt_tokens", 100}};
  ASSERT_EQ(post(port_, "/v1/completions", body).status, 200);
  EXPECT_EQ(gen_->last_request().prompt_token_ids.size(), 100u);
  // Chat: the rendered prompt's last tokens.
  json c = chat("hello");
  c["truncate_prompt_tokens"] = 4;
  ASSERT_EQ(post(port_, "/v1/chat/completions", c).status, 200);
  EXPECT_EQ(gen_->last_request().prompt_token_ids, gen_->encode("nt|>", false));
  // Out of range.
  body["truncate_prompt_tokens"] = 0;
  expect_400(post(port_, "/v1/completions", body), "truncate_prompt_tokens");
  body["truncate_prompt_tokens"] = -2;
  expect_400(post(port_, "/v1/completions", body), "truncate_prompt_tokens");
  body["truncate_prompt_tokens"] = 257;
  const auto r = post(port_, "/v1/completions", body);
  expect_400(r, "truncate_prompt_tokens");
  EXPECT_NE(r.body.find("is greater than max_model_len (256)"), std::string::npos) << r.body;
  body["truncate_prompt_tokens"] = "3";
  expect_400(post(port_, "/v1/completions", body), "truncate_prompt_tokens");
}

// The flag reaches the engine (its effect on text: tests/tokenizer, StreamingDetokenizer).
TEST_F(ApiCompatTest, SpacesBetweenSpecialTokensReachesTheEngine) {
  start();
  json body = chat("hi");
  ASSERT_EQ(post(port_, "/v1/chat/completions", body).status, 200);
  EXPECT_TRUE(gen_->last_request().params.spaces_between_special_tokens);
  body["spaces_between_special_tokens"] = false;
  ASSERT_EQ(post(port_, "/v1/chat/completions", body).status, 200);
  EXPECT_FALSE(gen_->last_request().params.spaces_between_special_tokens);
  body["spaces_between_special_tokens"] = "no";
  expect_400(post(port_, "/v1/chat/completions", body), "spaces_between_special_tokens");
}

TEST_F(ApiCompatTest, RequestChatTemplateOnlyWhenTrusted) {
  const std::string tmpl = "{% for m in messages %}[{{ m.content }}]{% endfor %}>";
  start();
  json body = chat("hi");
  body["chat_template"] = tmpl;
  auto r = post(port_, "/v1/chat/completions", body);
  expect_400(r, "chat_template");
  EXPECT_NE(r.body.find("--trust-request-chat-template"), std::string::npos);
  EXPECT_EQ(gen_->num_submitted(), 0);
  expect_400(
      post(port_, "/tokenize", json{{"messages", body["messages"]}, {"chat_template", tmpl}}),
      "chat_template");
  TearDown();

  ServerConfig cfg;
  cfg.trust_request_chat_template = true;
  start(cfg);
  ASSERT_EQ(post(port_, "/v1/chat/completions", body).status, 200);
  EXPECT_EQ(gen_->last_request().prompt_token_ids, gen_->encode("[hi]>", false));
  // /tokenize renders it alike.
  json tk = {{"messages", body["messages"]}, {"chat_template", tmpl}};
  EXPECT_EQ(post(port_, "/tokenize", tk).json()["tokens"], json(gen_->encode("[hi]>", false)));
  tk["tools"] = json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  expect_400(post(port_, "/tokenize", tk), "tools");
  body["chat_template"] = 5;
  expect_400(post(port_, "/v1/chat/completions", body), "chat_template");
  body["chat_template"] = "";
  expect_400(post(port_, "/v1/chat/completions", body), "chat_template");
}

// Fields of OpenAI's and vLLM's schemas that would change the answer and that inferd does not do
// are a 400 naming them; a value that asks for nothing passes.
TEST_F(ApiCompatTest, UnsupportedFieldsAreRefusedByName) {
  start();
  const std::vector<std::pair<std::string, json>> chat_only = {
      {"functions", json::array({{{"name", "f"}}})},
      {"function_call", "auto"},
      {"audio", {{"voice", "alloy"}}},
      {"modalities", json::array({"text", "audio"})},
      {"web_search_options", {{"search_context_size", "low"}}},
      {"reasoning_effort", "low"},
      {"verbosity", "low"}};
  const std::vector<std::pair<std::string, json>> both = {{"use_beam_search", true},
                                                          {"length_penalty", 0.5},
                                                          {"bad_words", {"x"}},
                                                          {"allowed_token_ids", {5}},
                                                          {"logits_processors", {"x"}},
                                                          {"prompt_embeds", "AAAA"},
                                                          {"mm_processor_kwargs", {{"a", 1}}},
                                                          {"cache_salt", "s"},
                                                          {"kv_transfer_params", {{"a", 1}}},
                                                          {"vllm_xargs", {{"a", 1}}},
                                                          {"guided_whitespace_pattern", " "}};
  for (const auto& [field, value] : chat_only) {
    json body = chat("hi");
    body[field] = value;
    expect_400(post(port_, "/v1/chat/completions", body), field);
  }
  for (const auto& [field, value] : both) {
    json body = chat("hi");
    body[field] = value;
    expect_400(post(port_, "/v1/chat/completions", body), field);
    json c = {{"prompt", "q"}, {"max_tokens", 1}, {field, value}};
    expect_400(post(port_, "/v1/completions", c), field);
  }
  EXPECT_EQ(gen_->num_submitted(), 0);
  json fine = chat("hi");
  fine["modalities"] = json::array({"text"});
  fine["length_penalty"] = 1.0;
  fine["use_beam_search"] = false;
  fine["bad_words"] = json::array();
  fine["functions"] = nullptr;
  EXPECT_EQ(post(port_, "/v1/chat/completions", fine).status, 200);
}

TEST_F(ApiCompatTest, RequestIdAndDocuments) {
  ServerConfig cfg;
  cfg.trust_request_chat_template = true;
  start(cfg);
  json body = chat("hi");
  body["request_id"] = "abc-123";
  auto r = post(port_, "/v1/chat/completions", body);
  EXPECT_EQ(r.json()["id"], "chatcmpl-abc-123");
  json c = {{"prompt", "q"}, {"max_tokens", 1}, {"request_id", "r1"}};
  EXPECT_EQ(post(port_, "/v1/completions", c).json()["id"], "cmpl-r1");
  body["request_id"] = "bad\r\nX-Injected: 1";
  expect_400(post(port_, "/v1/chat/completions", body), "request_id");
  // documents: the template's `documents`.
  body = chat("hi");
  body["documents"] = json::array({{{"title", "A"}}, {{"title", "B"}}});
  body["chat_template"] = "{% for d in documents %}<{{ d.title }}>{% endfor %}";
  ASSERT_EQ(post(port_, "/v1/chat/completions", body).status, 200);
  EXPECT_EQ(gen_->last_request().prompt_token_ids, gen_->encode("<A><B>", false));
  body["documents"] = json::array({"text"});
  expect_400(post(port_, "/v1/chat/completions", body), "documents[0]");
}

TEST_F(ApiCompatTest, SageMakerPingAndInvocations) {
  start();
  EXPECT_EQ(get(port_, "/ping").status, 200);
  EXPECT_EQ(post(port_, "/ping", json::object()).status, 200);
  auto r = http_call(port_, http::verb::put, "/ping");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET, POST");
  // messages: a chat completion; prompt: a completion.
  json j = post(port_, "/invocations", chat("hi")).json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hel");
  j = post(port_, "/invocations", json{{"prompt", "q"}, {"max_tokens", 2}}).json();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "He");
  // Streaming too.
  json s = chat("hi");
  s["stream"] = true;
  r = post(port_, "/invocations", s);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("chat.completion.chunk"), std::string::npos);
  // Neither: a 400 that says what was expected; errors of the route it picked as that route's.
  r = post(port_, "/invocations", json{{"input", "x"}});
  ASSERT_EQ(r.status, 400);
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("Expected one of"),
            std::string::npos);
  expect_400(post(port_, "/invocations", json{{"prompt", "q"}, {"n", "two"}}), "n");
  EXPECT_EQ(get(port_, "/invocations").status, 405);
  const std::string page = get(port_, "/metrics").body;
  EXPECT_GE(metric_value(page, "inferd:http_requests_total", "handler=\"/invocations\""), 1.0);
}

TEST_F(ApiCompatTest, ModelsListEachServedNameOnceAndAliasesNotAtAll) {
  ServerConfig cfg;
  cfg.served_model_names = {"demo"};
  cfg.model_aliases = {"default"};
  start(cfg);
  json j = get(port_, "/v1/models").json();
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "demo");
  // The alias is served, under its own name.
  json body = chat("hi");
  body["model"] = "default";
  j = post(port_, "/v1/chat/completions", body).json();
  EXPECT_EQ(j["model"], "default");
  EXPECT_EQ(get(port_, "/v1/models/default").status, 200);
  EXPECT_EQ(post(port_, "/tokenize", json{{"model", "default"}, {"prompt", "a"}}).status, 200);
  body["model"] = "other";
  EXPECT_EQ(post(port_, "/v1/chat/completions", body).status, 404);
  TearDown();
  // Several --served-model-name: one entry each, as vLLM lists them, the same model behind.
  start();
  j = get(port_, "/v1/models").json();
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][1]["id"], "tiny-alias");
  EXPECT_EQ(j["data"][0]["root"], j["data"][1]["root"]);
}

}  // namespace
}  // namespace inferd::server::testing
