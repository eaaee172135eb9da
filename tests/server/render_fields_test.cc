// The answer fields vLLM adds to completions and chat (issue 30): return_token_ids (the prompt's
// and each choice's token ids), return_tokens_as_token_ids (logprob tokens as "token_id:N") and
// chat `echo` (the last message's content before the answer), plain and streamed, over the fake
// generator (token id = byte + 3).
#include <gtest/gtest.h>

#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;

class RenderFieldsTest : public ::testing::Test {
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
  // The fake's token ids of `text`.
  static json ids_of(const std::string& text) {
    json a = json::array();
    for (unsigned char c : text) a.push_back(int(c) + 3);
    return a;
  }
  // The chunks of a stream (without [DONE]).
  std::vector<json> stream(const std::string& route, json body) {
    body["stream"] = true;
    auto ev = sse_events(post(port_, route, body).body);
    EXPECT_EQ(ev.back(), "[DONE]");
    std::vector<json> out;
    for (size_t i = 0; i + 1 < ev.size(); ++i) out.push_back(json::parse(ev[i]));
    return out;
  }
  json chat(const json& messages, int max_tokens = 4) {
    return {{"messages", messages}, {"max_tokens", max_tokens}};
  }

  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(RenderFieldsTest, CompletionsReturnTokenIds) {
  json body = {{"prompt", {{5, 6, 7}, {8, 9}}}, {"max_tokens", 3}};
  json j = post(port_, "/v1/completions", body).json();
  EXPECT_FALSE(j["choices"][0].contains("token_ids"));  // only when asked
  EXPECT_FALSE(j["choices"][0].contains("prompt_token_ids"));
  body["return_token_ids"] = true;
  j = post(port_, "/v1/completions", body).json();
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["prompt_token_ids"], json({5, 6, 7}));
  EXPECT_EQ(j["choices"][1]["prompt_token_ids"], json({8, 9}));
  for (const auto& c : j["choices"])
    EXPECT_EQ(c["token_ids"], ids_of(c["text"].get<std::string>())) << c.dump();

  // Streamed, n=2: each choice's prompt ids once, its token ids across the chunks.
  body = {{"prompt", {5, 6}}, {"max_tokens", 4}, {"n", 2}, {"return_token_ids", true}};
  std::vector<json> ids(2, json::array());
  std::vector<int> prompt_ids(2, 0);
  std::vector<std::string> text(2);
  for (const json& chunk : stream("/v1/completions", body)) {
    const json& c = chunk["choices"][0];
    const int i = c["index"];
    text[i] += c["text"].get<std::string>();
    for (const auto& t : c["token_ids"]) ids[i].push_back(t);
    if (c.contains("prompt_token_ids")) {
      ++prompt_ids[i];
      EXPECT_EQ(c["prompt_token_ids"], json({5, 6}));
    }
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(prompt_ids[i], 1);
    EXPECT_EQ(ids[i], ids_of(text[i]));
    EXPECT_EQ(ids[i].size(), 4u);
  }
}

TEST_F(RenderFieldsTest, TokensAsTokenIds) {
  json body = {{"prompt", "q"}, {"max_tokens", 3}, {"logprobs", 1}};
  body["return_tokens_as_token_ids"] = true;
  json lp = post(port_, "/v1/completions", body).json()["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json({"token_id:75", "token_id:104", "token_id:111"}));  // H e l
  EXPECT_TRUE(lp["top_logprobs"][0].contains("token_id:75")) << lp.dump();
  EXPECT_EQ(lp["text_offset"], json({0, 1, 2}));  // offsets still count the text
  // Streamed completions: the same tokens.
  json streamed = json::array();
  for (const json& chunk : stream("/v1/completions", body))
    if (!chunk["choices"][0]["logprobs"].is_null())
      for (const auto& t : chunk["choices"][0]["logprobs"]["tokens"]) streamed.push_back(t);
  EXPECT_EQ(streamed, lp["tokens"]);
  // Chat: token, top_logprobs and bytes show the id form.
  json cb = chat({{{"role", "user"}, {"content", "hi"}}}, 2);
  cb["logprobs"] = true;
  cb["top_logprobs"] = 1;
  cb["return_tokens_as_token_ids"] = true;
  json content =
      post(port_, "/v1/chat/completions", cb).json()["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "token_id:75");
  EXPECT_EQ(content[0]["top_logprobs"][0]["token"], "token_id:75");
  const std::string s = "token_id:75";
  EXPECT_EQ(content[0]["bytes"], json(std::vector<int>(s.begin(), s.end())));
  // Off (the default): the text.
  cb.erase("return_tokens_as_token_ids");
  content = post(port_, "/v1/chat/completions", cb).json()["choices"][0]["logprobs"]["content"];
  EXPECT_EQ(content[0]["token"], "H");
}

TEST_F(RenderFieldsTest, ChatReturnTokenIds) {
  json body = chat({{{"role", "user"}, {"content", "hi"}}});
  json tok = post(port_, "/tokenize", {{"messages", body["messages"]}}).json();
  body["return_token_ids"] = true;
  json j = post(port_, "/v1/chat/completions", body).json();
  EXPECT_EQ(j["prompt_token_ids"], tok["tokens"]);
  const std::string text = j["choices"][0]["message"]["content"];
  EXPECT_EQ(j["choices"][0]["token_ids"], ids_of(text));
  // Streamed: the prompt's ids on the role chunk, each delta's ids on its chunk.
  json ids = json::array();
  int prompt_ids = 0;
  for (const json& chunk : stream("/v1/chat/completions", body)) {
    if (chunk.contains("prompt_token_ids")) {
      ++prompt_ids;
      EXPECT_EQ(chunk["prompt_token_ids"], tok["tokens"]);
      EXPECT_EQ(chunk["choices"][0]["delta"]["role"], "assistant");
    }
    for (const auto& t : chunk["choices"][0].value("token_ids", json::array())) ids.push_back(t);
  }
  EXPECT_EQ(prompt_ids, 1);
  EXPECT_EQ(ids, ids_of(text));
  // Not asked: absent.
  body.erase("return_token_ids");
  j = post(port_, "/v1/chat/completions", body).json();
  EXPECT_FALSE(j.contains("prompt_token_ids"));
  EXPECT_FALSE(j["choices"][0].contains("token_ids"));
}

TEST_F(RenderFieldsTest, ChatEcho) {
  const json user = {{"role", "user"}, {"content", "hi"}};
  const json prefill = {{"role", "assistant"}, {"content", "Sure: "}};
  json body = chat({user, prefill});
  const std::string plain =
      post(port_, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"];
  body["echo"] = true;
  json j = post(port_, "/v1/chat/completions", body).json();
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Sure: " + plain);
  // Streamed: the echo right after the role, then the answer.
  std::string streamed;
  for (const json& chunk : stream("/v1/chat/completions", body))
    streamed += chunk["choices"][0]["delta"].value("content", "");
  EXPECT_EQ(streamed, "Sure: " + plain);
  // The last message is the user's: nothing to echo while a generation prompt is added...
  body = chat(json::array({user}));
  const std::string answer =
      post(port_, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"];
  body["echo"] = true;
  EXPECT_EQ(post(port_, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"],
            answer);
  // ...and its own content without one (the answer takes the last message's role).
  body["add_generation_prompt"] = false;
  const std::string cont =
      post(port_, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"];
  EXPECT_EQ(cont.rfind("hi", 0), 0u) << cont;
}

TEST_F(RenderFieldsTest, WrongTypesAreNamed) {
  for (const char* field : {"return_token_ids", "return_tokens_as_token_ids", "echo"}) {
    json body = chat({{{"role", "user"}, {"content", "hi"}}});
    body[field] = "yes";
    HttpResult r = post(port_, "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 400) << field;
    EXPECT_EQ(r.json()["error"]["param"], field) << r.body;
  }
  json body = {{"prompt", "q"}, {"return_token_ids", 1}};
  HttpResult r = post(port_, "/v1/completions", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["param"], "return_token_ids");
}

}  // namespace
}  // namespace inferd::server::testing
