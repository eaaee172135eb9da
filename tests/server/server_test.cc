// The HTTP server against a fake generator: routes, OpenAI shapes, every bad-input case, limits
// (auth, body size, queue, rate, timeout), disconnects, CORS, keep-alive, drain, concurrency.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/server.h"
#include "server/test_client.h"
#include "server/ui_page.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void start() { start(ServerConfig(), FakeConfig()); }
  void start(const ServerConfig& c) { start(c, FakeConfig()); }
  void start(const ServerConfig& c, const FakeConfig& fc) {
    ServerConfig cfg = c;
    gen_ = std::make_shared<FakeGenerator>(fc);
    if (cfg.served_model_names.empty()) cfg.served_model_names = {"tiny", "tiny-alias"};
    port_ = start_test_server(cfg, gen_, server_);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (gen_) gen_->shutdown();
    server_.reset();
    gen_.reset();
  }
  json chat_body(const std::string& content = "hi", int max_tokens = 8) {
    return {{"model", "tiny"},
            {"messages", {{{"role", "user"}, {"content", content}}}},
            {"max_tokens", max_tokens}};
  }
  std::string metrics() { return get(port_, "/metrics").body; }

  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

void expect_error_shape(const HttpResult& r, int status, const std::string& param = "") {
  EXPECT_EQ(r.status, status) << r.body;
  json j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.body;
  ASSERT_TRUE(j.contains("error")) << r.body;
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
  EXPECT_TRUE(e["type"].is_string());
  EXPECT_TRUE(e.contains("param"));
  EXPECT_TRUE(e.contains("code"));
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r.body;
  }
}

TEST_F(ServerTest, HealthReadyAndVersion) {
  start();
  EXPECT_EQ(get(port_, "/health").status, 200);
  EXPECT_EQ(get(port_, "/ready").status, 200);
  server_->set_ready(false);
  expect_error_shape(get(port_, "/ready"), 503);
  EXPECT_EQ(get(port_, "/version").json()["version"], "0.1.0");
}

TEST_F(ServerTest, ModelsListAndLookup) {
  start();
  auto r = get(port_, "/v1/models");
  ASSERT_EQ(r.status, 200);
  json j = r.json();
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0]["id"], "tiny");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["max_model_len"], 256);
  EXPECT_EQ(get(port_, "/v1/models/tiny-alias").json()["id"], "tiny-alias");
  expect_error_shape(get(port_, "/v1/models/nope"), 404, "model");
}

TEST_F(ServerTest, UnknownRouteAndWrongMethod) {
  start();
  expect_error_shape(get(port_, "/v1/nothing"), 404);
  expect_error_shape(get(port_, "/nothing"), 404);
  auto r = get(port_, "/v1/chat/completions");
  expect_error_shape(r, 405);
  EXPECT_EQ(r.header("allow"), "POST");
  r = post(port_, "/health", json::object());
  expect_error_shape(r, 405);
  EXPECT_EQ(r.header("allow"), "GET");
  // Unknown paths share one metrics label.
  get(port_, "/random/path/1");
  const auto page = metrics();
  EXPECT_EQ(metric_value(page, "inferd:http_requests_total", "handler=\"other\""), 3.0);
  EXPECT_EQ(page.find("/random/path"), std::string::npos);
  // The process's resident memory (what `bench soak` watches for leaks).
  EXPECT_GT(metric_value(page, "process_resident_memory_bytes"), 1e6);
}

TEST_F(ServerTest, ChatNonStreaming) {
  start();
  auto r = post(port_, "/v1/chat/completions", chat_body("hi", 5));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  // "<|user|>hi\n<|assistant|>" is 24 bytes, no BOS for chat by default.
  EXPECT_EQ(j["usage"]["prompt_tokens"], 24);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 29);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  // The same prompt again hits the (fake) prefix cache.
  j = post(port_, "/v1/chat/completions", chat_body("hi", 5)).json();
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 16);
  // The request reached the engine with the right parameters.
  auto body = chat_body("hi", 5);
  body["temperature"] = 0.5;
  body["top_p"] = 0.9;
  body["top_k"] = 7;
  body["min_p"] = 0.1;
  body["seed"] = 42;
  body["presence_penalty"] = 0.5;
  body["frequency_penalty"] = -0.5;
  body["repetition_penalty"] = 1.2;
  body["logit_bias"] = {{"10", 5}, {"11", -100}};
  body["min_tokens"] = 2;
  body["ignore_eos"] = true;
  body["skip_special_tokens"] = false;
  body["stop"] = "zzz";
  body["max_completion_tokens"] = 4;
  ASSERT_EQ(post(port_, "/v1/chat/completions", body).status, 200);
  const auto req = gen_->last_request();
  EXPECT_FLOAT_EQ(req.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(req.params.top_p, 0.9f);
  EXPECT_EQ(req.params.top_k, 7);
  EXPECT_FLOAT_EQ(req.params.min_p, 0.1f);
  EXPECT_EQ(req.params.seed, 42u);
  EXPECT_FLOAT_EQ(req.params.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(req.params.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(req.params.repetition_penalty, 1.2f);
  ASSERT_EQ(req.params.logit_bias.size(), 2u);
  EXPECT_EQ(req.params.min_tokens, 2);
  EXPECT_TRUE(req.params.ignore_eos);
  EXPECT_FALSE(req.params.skip_special_tokens);
  EXPECT_EQ(req.params.stop, std::vector<std::string>{"zzz"});
  EXPECT_EQ(req.params.max_tokens, 4);  // max_completion_tokens wins over max_tokens
}

TEST_F(ServerTest, ChatStreamingWithUsage) {
  start();
  auto body = chat_body("hi", 6);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto r = post(port_, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type").rfind("text/event-stream", 0), 0u);
  auto ev = sse_events(r.body);
  ASSERT_GE(ev.size(), 4u);
  EXPECT_EQ(ev.back(), "[DONE]");
  json first = json::parse(ev[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["usage"].is_null());
  std::string text;
  std::string finish;
  const std::string id = first["id"];
  for (size_t i = 1; i + 2 < ev.size(); ++i) {
    json c = json::parse(ev[i]);
    EXPECT_EQ(c["id"], id);
    ASSERT_EQ(c["choices"].size(), 1u);
    EXPECT_FALSE(c["choices"][0]["delta"].contains("role"));
    if (c["choices"][0]["delta"].contains("content"))
      text += c["choices"][0]["delta"]["content"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) {
      EXPECT_EQ(i, ev.size() - 3) << "finish_reason only in the last choice chunk";
      finish = c["choices"][0]["finish_reason"];
    }
  }
  EXPECT_EQ(text, "Hello ");
  EXPECT_EQ(finish, "length");
  json usage = json::parse(ev[ev.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 6);
  EXPECT_EQ(usage["usage"]["prompt_tokens"], 24);
}

TEST_F(ServerTest, StreamWithoutUsageHasNoUsageField) {
  start();
  auto body = chat_body("hi", 3);
  body["stream"] = true;
  auto ev = sse_events(post(port_, "/v1/chat/completions", body).body);
  ASSERT_GE(ev.size(), 3u);
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    json c = json::parse(ev[i]);
    EXPECT_FALSE(c.contains("usage"));
    EXPECT_FALSE(c["choices"].empty());
  }
}

TEST_F(ServerTest, CompletionsBatchAndN) {
  start();
  json body = {{"model", "tiny"}, {"prompt", {"ab", "cde"}}, {"n", 2}, {"max_tokens", 3}};
  auto r = post(port_, "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.json();
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_EQ(j["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["text"], "Hel");
  }
  // BOS + 2 and BOS + 3 tokens.
  EXPECT_EQ(j["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  // Token-id prompts.
  body = {{"prompt", {{5, 6, 7}, {8, 9}}}, {"max_tokens", 2}};
  j = post(port_, "/v1/completions", body).json();
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["model"], "tiny");  // the default name when none is given
}

TEST_F(ServerTest, CompletionsStreamingNAndEcho) {
  start();
  json body = {{"prompt", "xy"}, {"n", 3}, {"max_tokens", 4}, {"stream", true}, {"echo", true}};
  auto ev = sse_events(post(port_, "/v1/completions", body).body);
  ASSERT_EQ(ev.back(), "[DONE]");
  std::vector<std::string> text(3);
  std::vector<std::string> finish(3);
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    json c = json::parse(ev[i]);
    EXPECT_EQ(c["object"], "text_completion");
    for (auto& ch : c["choices"]) {
      const int idx = ch["index"];
      text[idx] += ch["text"].get<std::string>();
      if (!ch["finish_reason"].is_null()) finish[idx] = ch["finish_reason"];
    }
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(text[i], "xyHell");
    EXPECT_EQ(finish[i], "length");
  }
}

TEST_F(ServerTest, StopStrings) {
  start();
  json body = {{"prompt", "q"}, {"max_tokens", 30}, {"stop", {"wor", "zz"}}};
  json j = post(port_, "/v1/completions", body).json();
  EXPECT_EQ(j["choices"][0]["text"], "Hello ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][0]["stop_reason"], "wor");
  body["include_stop_str_in_output"] = true;
  j = post(port_, "/v1/completions", body).json();
  EXPECT_EQ(j["choices"][0]["text"], "Hello wor");
  // Streaming: the held-back text never leaks.
  body.erase("include_stop_str_in_output");
  body["stream"] = true;
  std::string text;
  for (auto& e : sse_events(post(port_, "/v1/completions", body).body))
    if (e != "[DONE]") text += json::parse(e)["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, "Hello ");
}

TEST_F(ServerTest, EosFinishesWithStop) {
  FakeConfig fc;
  fc.eos_after = 3;
  start(ServerConfig(), fc);
  json j = post(port_, "/v1/chat/completions", chat_body("hi", 20)).json();
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hel");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
}

TEST_F(ServerTest, ChatLogprobs) {
  start();
  auto body = chat_body("hi", 3);
  body["logprobs"] = true;
  body["top_logprobs"] = 2;
  json j = post(port_, "/v1/chat/completions", body).json();
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0]["token"], "H");
  EXPECT_DOUBLE_EQ(content[0]["logprob"].get<double>(), -0.25);
  EXPECT_EQ(content[0]["bytes"], json::array({72}));
  ASSERT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(content[0]["top_logprobs"][0]["token"], "H");
  EXPECT_DOUBLE_EQ(content[0]["top_logprobs"][1]["logprob"].get<double>(), -1.25);
  EXPECT_EQ(gen_->last_request().params.logprobs, 2);
  // Streaming carries them per chunk.
  body["stream"] = true;
  int n = 0;
  for (auto& e : sse_events(post(port_, "/v1/chat/completions", body).body)) {
    if (e == "[DONE]") continue;
    json c = json::parse(e);
    if (c["choices"][0]["logprobs"].is_object())
      n += int(c["choices"][0]["logprobs"]["content"].size());
  }
  EXPECT_EQ(n, 3);
}

TEST_F(ServerTest, CompletionLogprobs) {
  start();
  json body = {{"prompt", "q"}, {"max_tokens", 3}, {"logprobs", 1}};
  json lp = post(port_, "/v1/completions", body).json()["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"H", "e", "l"}));
  EXPECT_EQ(lp["token_logprobs"].size(), 3u);
  EXPECT_EQ(lp["text_offset"], json::array({0, 1, 2}));
  ASSERT_EQ(lp["top_logprobs"].size(), 3u);
  EXPECT_TRUE(lp["top_logprobs"][0].contains("H"));
}

TEST_F(ServerTest, TokenizeAndDetokenize) {
  start();
  json j = post(port_, "/tokenize", {{"prompt", "ab"}}).json();
  EXPECT_EQ(j["tokens"], json::array({1, 100, 101}));
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["max_model_len"], 256);
  j = post(port_, "/tokenize",
           {{"prompt", "ab"}, {"add_special_tokens", false}, {"return_token_strs", true}})
          .json();
  EXPECT_EQ(j["tokens"], json::array({100, 101}));
  EXPECT_EQ(j["token_strs"], json::array({"a", "b"}));
  j = post(port_, "/tokenize", {{"messages", {{{"role", "user"}, {"content", "x"}}}}}).json();
  EXPECT_EQ(j["count"], 23);  // "<|user|>x\n<|assistant|>"
  j = post(port_, "/detokenize", {{"tokens", {1, 100, 101}}}).json();
  EXPECT_EQ(j["prompt"], "<s>ab");
  expect_error_shape(post(port_, "/detokenize", {{"tokens", {1, 5000}}}), 400, "tokens[1]");
  expect_error_shape(post(port_, "/detokenize", {{"tokens", "x"}}), 400, "tokens");
  expect_error_shape(post(port_, "/tokenize", json::object()), 400, "prompt");
  expect_error_shape(post(port_, "/tokenize", {{"prompt", "a"}, {"model", "zzz"}}), 404, "model");
}

struct BadCase {
  const char* name;
  bool chat;
  json patch;  // merged into a valid body (null values remove the key)
  int status;
  const char* param;
};

TEST_F(ServerTest, EveryBadInputGetsOpenAIErrorAndServerKeepsServing) {
  start();
  const std::vector<BadCase> cases = {
      {"temperature type", true, {{"temperature", "hot"}}, 400, "temperature"},
      {"temperature negative", true, {{"temperature", -0.1}}, 400, "temperature"},
      {"top_p zero", true, {{"top_p", 0}}, 400, "top_p"},
      {"top_p above one", true, {{"top_p", 1.5}}, 400, "top_p"},
      {"top_k type", true, {{"top_k", 1.5}}, 400, "top_k"},
      {"top_k below -1", true, {{"top_k", -2}}, 400, "top_k"},
      {"min_p range", true, {{"min_p", 2}}, 400, "min_p"},
      {"repetition_penalty zero", true, {{"repetition_penalty", 0}}, 400, "repetition_penalty"},
      {"presence_penalty range", true, {{"presence_penalty", 3}}, 400, "presence_penalty"},
      {"frequency_penalty range", true, {{"frequency_penalty", -2.5}}, 400, "frequency_penalty"},
      {"n zero", true, {{"n", 0}}, 400, "n"},
      {"n huge", true, {{"n", 100000}}, 400, "n"},
      {"n type", true, {{"n", "2"}}, 400, "n"},
      {"max_tokens negative", true, {{"max_tokens", -1}}, 400, "max_tokens"},
      {"max_tokens zero", true, {{"max_tokens", 0}}, 400, "max_tokens"},
      {"max_tokens huge", true, {{"max_tokens", 1000000}}, 400, "max_tokens"},
      {"max_tokens enormous", true, {{"max_tokens", 1e30}}, 400, "max_tokens"},
      {"max_tokens type", true, {{"max_tokens", "10"}}, 400, "max_tokens"},
      {"max_completion_tokens huge",
       true,
       {{"max_completion_tokens", 999999}},
       400,
       "max_completion_tokens"},
      {"min_tokens above max", true, {{"min_tokens", 50}}, 400, "min_tokens"},
      {"seed type", true, {{"seed", "x"}}, 400, "seed"},
      {"stream type", true, {{"stream", "yes"}}, 400, "stream"},
      {"stream_options without stream",
       true,
       {{"stream_options", {{"include_usage", true}}}},
       400,
       "stream_options"},
      {"stop type", true, {{"stop", 5}}, 400, "stop"},
      {"stop element type", true, {{"stop", {"a", 1}}}, 400, "stop[1]"},
      {"logit_bias type", true, {{"logit_bias", {1, 2}}}, 400, "logit_bias"},
      {"logit_bias key", true, {{"logit_bias", {{"abc", 1}}}}, 400, "logit_bias"},
      {"logit_bias out of vocab", true, {{"logit_bias", {{"99999", 1}}}}, 400, "logit_bias"},
      {"logit_bias value", true, {{"logit_bias", {{"5", 200}}}}, 400, "logit_bias"},
      {"logit_bias value type", true, {{"logit_bias", {{"5", "x"}}}}, 400, "logit_bias"},
      {"top_logprobs without logprobs", true, {{"top_logprobs", 2}}, 400, "top_logprobs"},
      {"top_logprobs range", true, {{"logprobs", true}, {"top_logprobs", 50}}, 400, "top_logprobs"},
      {"logprobs type", true, {{"logprobs", 3}}, 400, "logprobs"},
      {"user type", true, {{"user", 5}}, 400, "user"},
      {"messages missing", true, {{"messages", nullptr}}, 400, "messages"},
      {"messages empty", true, {{"messages", json::array()}}, 400, "messages"},
      {"messages type", true, {{"messages", "hi"}}, 400, "messages"},
      {"message not object", true, {{"messages", {"hi"}}}, 400, "messages[0]"},
      {"role invalid",
       true,
       {{"messages", {{{"role", "wizard"}, {"content", "x"}}}}},
       400,
       "messages[0].role"},
      {"role missing", true, {{"messages", {{{"content", "x"}}}}}, 400, "messages[0].role"},
      {"content missing", true, {{"messages", {{{"role", "user"}}}}}, 400, "messages[0].content"},
      {"content type",
       true,
       {{"messages", {{{"role", "user"}, {"content", 5}}}}},
       400,
       "messages[0].content"},
      {"image part",
       true,
       {{"messages",
         {{{"role", "user"},
           {"content", {{{"type", "image_url"}, {"image_url", {{"url", "x"}}}}}}}}}},
       400,
       "messages[0].content[0].type"},
      {"template raises", true, {{"chat_template_kwargs", {{"raise", true}}}}, 400, "messages"},
      {"tools type", true, {{"tools", "x"}}, 400, "tools"},
      {"tool without function",
       true,
       {{"tools", {{{"type", "function"}}}}},
       400,
       "tools[0].function"},
      {"tool_choice required", true, {{"tool_choice", "required"}}, 400, "tool_choice"},
      {"response_format type",
       true,
       {{"response_format", {{"type", "xml"}}}},
       400,
       "response_format.type"},
      {"prompt too long",
       true,
       {{"messages", {{{"role", "user"}, {"content", std::string(300, 'x')}}}}},
       400,
       "messages"},
      {"unknown model", true, {{"model", "gpt-17"}}, 404, "model"},
      {"prompt missing", false, {{"prompt", nullptr}}, 400, "prompt"},
      {"prompt type", false, {{"prompt", 5}}, 400, "prompt"},
      {"prompt empty array", false, {{"prompt", json::array()}}, 400, "prompt"},
      {"prompt token out of vocab", false, {{"prompt", {1, 2, 9999}}}, 400, "prompt[2]"},
      {"prompt negative token", false, {{"prompt", {{1, -2}}}}, 400, "prompt[0][1]"},
      {"prompt mixed", false, {{"prompt", {"a", 1}}}, 400, "prompt[1]"},
      {"prompt empty tokens",
       false,
       {{"prompt", ""}, {"add_special_tokens", false}},
       400,
       "prompt"},
      {"completion prompt too long", false, {{"prompt", std::string(400, 'y')}}, 400, "prompt"},
      {"completion logprobs bool", false, {{"logprobs", true}}, 400, "logprobs"},
      {"completion logprobs range", false, {{"logprobs", 21}}, 400, "logprobs"},
      {"suffix", false, {{"suffix", "tail"}}, 400, "suffix"},
      {"best_of differs", false, {{"best_of", 3}}, 400, "best_of"},
      {"echo type", false, {{"echo", 1}}, 400, "echo"},
  };
  for (const auto& c : cases) {
    json body =
        c.chat ? chat_body() : json{{"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 4}};
    for (auto it = c.patch.begin(); it != c.patch.end(); ++it) {
      if (it.value().is_null())
        body.erase(it.key());
      else
        body[it.key()] = it.value();
    }
    SCOPED_TRACE(c.name);
    auto r = post(port_, c.chat ? "/v1/chat/completions" : "/v1/completions", body);
    expect_error_shape(r, c.status, c.param);
  }
  // Not JSON at all / not an object.
  auto r = http_call(port_, http::verb::post, "/v1/chat/completions", "{\"messages\": [");
  expect_error_shape(r, 400);
  EXPECT_EQ(r.json()["error"]["code"], "invalid_json");
  expect_error_shape(http_call(port_, http::verb::post, "/v1/completions", "[1,2]"), 400);
  expect_error_shape(http_call(port_, http::verb::post, "/v1/completions", ""), 400);
  // Found by fuzz_http: a number too large for a double was an uncaught out_of_range: a 500.
  for (const char* path : {"/v1/completions", "/v1/chat/completions", "/tokenize"}) {
    r = http_call(port_, http::verb::post, path, R"({"prompt": "a", "temperature": 44E2444})");
    expect_error_shape(r, 400);
    EXPECT_EQ(r.json()["error"]["code"], "invalid_json") << path;
  }
  // Nothing bad reached the engine, and everyone else is still served.
  EXPECT_EQ(gen_->num_submitted(), 0);
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body()).status, 200);
}

// Issue 17: sizes of stop, logit_bias, tools, schemas and messages are bounded; each bound is a
// 400 naming the field and the limit, and what is at the limit passes.
TEST_F(ServerTest, RequestSizeLimits) {
  ServerConfig cfg;
  cfg.request_limits.max_tools_bytes = 2000;  // configurable (the default is 1 MiB)
  start(cfg);
  auto with = [&](json patch) {
    json b = chat_body();
    b.merge_patch(patch);
    return b;
  };
  auto expect_limit = [&](const json& body, const std::string& param, const std::string& limit,
                          const std::string& target = "/v1/chat/completions") {
    SCOPED_TRACE(param);
    const HttpResult r = post(port_, target, body);
    expect_error_shape(r, 400, target == "/tokenize" ? "" : param);
    EXPECT_NE(r.body.find(limit), std::string::npos) << r.body;
  };
  json stops = json::array();
  for (int i = 0; i < 65; ++i) stops.push_back(std::to_string(i) + "s");
  expect_limit(with({{"stop", stops}}), "stop", "at most 64 stop sequences");
  stops.erase(stops.begin());
  EXPECT_EQ(post(port_, "/v1/chat/completions", with({{"stop", stops}})).status, 200);
  expect_limit(with({{"stop", std::string(1025, 'x')}}), "stop", "at most 1024 bytes");
  expect_limit(with({{"stop", {"ok", std::string(1025, 'x')}}}), "stop[1]", "at most 1024 bytes");
  EXPECT_EQ(post(port_, "/v1/chat/completions", with({{"stop", std::string(1024, 'x')}})).status,
            200);

  // The fake vocabulary has 259 ids: a smaller limit shows the count check comes first.
  json bias = json::object();
  for (int i = 0; i < 1025; ++i) bias[std::to_string(i)] = 1;
  expect_limit(with({{"logit_bias", bias}}), "logit_bias", "at most 1024 entries");

  json tools = json::array();
  for (int i = 0; i < 129; ++i)
    tools.push_back({{"type", "function"}, {"function", {{"name", "f"}}}});
  expect_limit(with({{"tools", tools}}), "tools", "maximum length 128");
  json big_tool = {{"type", "function"},
                   {"function", {{"name", "f"}, {"description", std::string(3000, 'd')}}}};
  expect_limit(with({{"tools", {big_tool}}}), "tools", "at most 2000 bytes");
  EXPECT_EQ(post(port_, "/v1/chat/completions",
                 with({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}},
                       {"tool_choice", "none"}}))
                .status,
            200);

  json schema = {
      {"type", "json_schema"},
      {"json_schema", {{"name", "s"}, {"schema", {{"description", std::string(300000, 'x')}}}}}};
  expect_limit(with({{"response_format", schema}}), "response_format", "at most 262144 bytes");

  json msgs = json::array();
  for (int i = 0; i < 2049; ++i) msgs.push_back({{"role", "user"}, {"content", "m"}});
  expect_limit(with({{"messages", msgs}}), "messages", "maximum length 2048");
  expect_limit({{"messages", msgs}}, "messages", "maximum length 2048", "/tokenize");
  msgs.erase(msgs.begin());
  EXPECT_EQ(post(port_, "/tokenize", {{"messages", msgs}}).status, 200);
  EXPECT_EQ(get(port_, "/health").status, 200);
}

// Issue 17: a chat template that blows up on what a client sends is a 400 with a JSON error, in
// bounded time, and the server keeps serving; message text that looks like Jinja stays text.
TEST_F(ServerTest, HostileTemplateUseIsA400AndTheServerStaysUp) {
  FakeConfig fc;
  fc.max_model_len = 100000;
  fc.chat_template =
      "{% for m in messages %}{{ m.content * (m.role == 'system' and 100000 or 1) }}{% endfor %}";
  start(ServerConfig(), fc);
  json body = chat_body();
  body["messages"] = {{{"role", "system"}, {"content", std::string(1000, 'a')}}};
  const auto t0 = std::chrono::steady_clock::now();
  HttpResult r = post(port_, "/v1/chat/completions", body);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  expect_error_shape(r, 400, "messages");
  EXPECT_NE(r.body.find("template limit"), std::string::npos) << r.body;

  body["messages"] = {{{"role", "user"}, {"content", "{{ cycler.__init__.__globals__ }}"}}};
  body["max_tokens"] = 1;
  body["logprobs"] = true;
  r = post(port_, "/tokenize", {{"messages", body["messages"]}});
  ASSERT_EQ(r.status, 200) << r.body;
  // The prompt is the message text verbatim (the fake tokenizer: byte + 3).
  EXPECT_EQ(r.json()["count"], 33) << r.body;
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body()).status, 200);
  EXPECT_EQ(get(port_, "/health").status, 200);
}

// Issue 17: request log lines hold no prompt text unless log_prompts (--log-prompts), and then a
// bounded, escaped excerpt.
TEST_F(ServerTest, RequestLogsHoldPromptsOnlyWhenAsked) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  struct Unhook {
    std::shared_ptr<spdlog::sinks::sink> s;
    ~Unhook() {
      auto& v = spdlog::default_logger()->sinks();
      v.erase(std::remove(v.begin(), v.end(), s), v.end());
    }
  } unhook{sink};
  auto wait_for_lines = [&](size_t n) {
    for (int i = 0; i < 200; ++i) {
      sink->flush();
      const std::string t = log.str();
      if (size_t(std::count(t.begin(), t.end(), '\n')) >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    sink->flush();
    return log.str();
  };
  const std::string secret = "SECRET-PROMPT \"quoted\"\nsecond line " + std::string(100, 'z');
  start();
  ASSERT_EQ(post(port_, "/v1/chat/completions", chat_body(secret)).status, 200);
  ASSERT_EQ(post(port_, "/v1/completions", {{"prompt", secret}, {"max_tokens", 2}}).status, 200);
  std::string text = wait_for_lines(3);  // "serving" and two request lines
  EXPECT_NE(text.find("route=/v1/completions status=200"), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;
  EXPECT_EQ(text.find("prompt="), std::string::npos) << text;
  server_->stop();
  gen_->shutdown();

  log.str("");
  ServerConfig cfg;
  cfg.log_prompts = true;
  cfg.log_prompt_max_bytes = 40;
  start(cfg);
  ASSERT_EQ(post(port_, "/v1/chat/completions", chat_body(secret)).status, 200);
  text = wait_for_lines(2);
  // The rendered prompt (the fake template: "<|user|>" + content), escaped, cut at 40 bytes.
  const std::string expected = std::string(" prompt=\"<|user|>SECRET-PROMPT \\\"quoted\\\"") +
                               "\\nsecond li...(157 bytes)\"";
  EXPECT_NE(text.find(expected), std::string::npos) << text;
  EXPECT_EQ(text.find(std::string(30, 'z')), std::string::npos) << text;
}

TEST_F(ServerTest, ApiKeyOnV1Routes) {
  ServerConfig cfg;
  cfg.api_keys = {"sk-good", "sk-other"};
  start(cfg);
  auto r = post(port_, "/v1/chat/completions", chat_body());
  expect_error_shape(r, 401);
  EXPECT_EQ(r.json()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(r.header("www-authenticate"), "Bearer");
  expect_error_shape(
      post(port_, "/v1/chat/completions", chat_body(), {{"Authorization", "Bearer sk-bad"}}), 401);
  expect_error_shape(get(port_, "/v1/models", {{"Authorization", "sk-good"}}), 401);
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body(), {{"Authorization", "Bearer sk-good"}})
                .status,
            200);
  EXPECT_EQ(get(port_, "/v1/models", {{"Authorization", "Bearer sk-other"}}).status, 200);
  // Not under /v1: open.
  EXPECT_EQ(get(port_, "/health").status, 200);
  EXPECT_EQ(get(port_, "/metrics").status, 200);
  EXPECT_EQ(post(port_, "/tokenize", {{"prompt", "a"}}).status, 200);
  EXPECT_EQ(gen_->num_submitted(), 1);
}

TEST_F(ServerTest, BodyLimit413) {
  ServerConfig cfg;
  cfg.http.max_body_bytes = 1000;
  start(cfg);
  auto big = chat_body(std::string(2000, 'x'));
  auto r = post(port_, "/v1/chat/completions", big);
  expect_error_shape(r, 413);
  EXPECT_EQ(r.json()["error"]["code"], "request_too_large");
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body()).status, 200);
}

TEST_F(ServerTest, QueueFull429WithRetryAfter) {
  ServerConfig cfg;
  cfg.retry_after_s = 3;
  FakeConfig fc;
  fc.max_queue = 2;
  start(cfg, fc);
  gen_->pause(true);
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i)
    ts.emplace_back([&] { ok += post(port_, "/v1/chat/completions", chat_body()).status == 200; });
  for (int i = 0; i < 500 && gen_->num_live() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(gen_->num_live(), 2);
  auto r = post(port_, "/v1/chat/completions", chat_body());
  expect_error_shape(r, 429);
  EXPECT_EQ(r.header("retry-after"), "3");
  EXPECT_EQ(r.json()["error"]["code"], "queue_full");
  gen_->pause(false);
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 2);
}

TEST_F(ServerTest, RateLimitRequestsPerMinute) {
  ServerConfig cfg;
  cfg.rate_limit_rpm = 2;
  cfg.api_keys = {"k1", "k2"};
  start(cfg);
  const std::vector<std::pair<std::string, std::string>> k1 = {{"Authorization", "Bearer k1"}};
  const std::vector<std::pair<std::string, std::string>> k2 = {{"Authorization", "Bearer k2"}};
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body(), k1).status, 200);
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body(), k1).status, 200);
  auto r = post(port_, "/v1/chat/completions", chat_body(), k1);
  expect_error_shape(r, 429);
  EXPECT_EQ(r.json()["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(r.json()["error"]["type"], "requests");
  const int retry = std::stoi(r.header("retry-after"));
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 30);
  // Per key: k2 has its own budget.
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body(), k2).status, 200);
}

TEST_F(ServerTest, RateLimitTokensPerMinute) {
  ServerConfig cfg;
  cfg.rate_limit_tpm = 60;
  start(cfg);
  // 24 prompt + 8 completion tokens each: the second fits (28 left >= 24), the third does not.
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body()).status, 200);
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body()).status, 200);
  auto r = post(port_, "/v1/chat/completions", chat_body());
  expect_error_shape(r, 429);
  EXPECT_EQ(r.json()["error"]["type"], "tokens");
  EXPECT_FALSE(r.header("retry-after").empty());
}

TEST_F(ServerTest, RequestTimeoutAbortsAndTellsTheClient) {
  ServerConfig cfg;
  cfg.request_timeout_s = 0.3;
  start(cfg);
  gen_->pause(true);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = post(port_, "/v1/chat/completions", chat_body());
  expect_error_shape(r, 408);
  EXPECT_EQ(r.json()["error"]["code"], "request_timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(gen_->num_aborted(), 1);
  // Streaming: an error event, then [DONE].
  auto body = chat_body();
  body["stream"] = true;
  r = post(port_, "/v1/chat/completions", body);
  EXPECT_EQ(r.status, 200);
  auto ev = sse_events(r.body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  json err = json::parse(ev[ev.size() - 2]);
  EXPECT_EQ(err["error"]["code"], "request_timeout");
  EXPECT_EQ(gen_->num_aborted(), 2);
  EXPECT_EQ(gen_->num_live(), 0);
}

TEST_F(ServerTest, ClientDisconnectAbortsAndFreesBlocks) {
  FakeConfig fc;
  fc.step = std::chrono::milliseconds(20);
  fc.max_model_len = 4096;
  start(ServerConfig(), fc);
  auto body = chat_body("hi", 2000);
  body["stream"] = true;
  {
    TestConnection c(port_);
    c.send(http::verb::post, "/v1/chat/completions", body.dump());
    ASSERT_EQ(c.read_header(), 200);
    EXPECT_FALSE(c.read_some_body().empty());
    for (int i = 0; i < 200 && metric_value(metrics(), "vllm:kv_cache_usage_perc") <= 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GT(metric_value(metrics(), "vllm:kv_cache_usage_perc"), 0.0);
    c.close();
  }
  for (int i = 0; i < 300 && gen_->num_live() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(gen_->num_live(), 0);
  EXPECT_EQ(gen_->num_aborted(), 1);
  const auto page = metrics();
  EXPECT_EQ(metric_value(page, "vllm:kv_cache_usage_perc"), 0.0);
  EXPECT_EQ(metric_value(page, "vllm:request_success_total", "abort"), 1.0);
  // A non-streaming request whose client goes away is aborted too.
  {
    TestConnection c(port_);
    c.send(http::verb::post, "/v1/chat/completions", chat_body("hi", 2000).dump());
    for (int i = 0; i < 200 && gen_->num_live() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    c.close();
  }
  for (int i = 0; i < 300 && gen_->num_live() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(gen_->num_live(), 0);
  EXPECT_EQ(gen_->num_aborted(), 2);
}

TEST_F(ServerTest, KeepAliveAndPipelining) {
  start();
  TestConnection c(port_);
  for (int i = 0; i < 3; ++i) {
    auto r = c.request(http::verb::post, "/v1/chat/completions", chat_body().dump());
    EXPECT_EQ(r.status, 200);
  }
  auto body = chat_body();
  body["stream"] = true;
  auto r = c.request(http::verb::post, "/v1/chat/completions", body.dump());
  EXPECT_EQ(sse_events(r.body).back(), "[DONE]");
  EXPECT_EQ(c.request(http::verb::get, "/health").status, 200);
  // Two requests written back to back before reading.
  c.send(http::verb::get, "/v1/models", "");
  c.send(http::verb::post, "/v1/completions", json{{"prompt", "a"}, {"max_tokens", 2}}.dump());
  EXPECT_EQ(c.receive().json()["object"], "list");
  EXPECT_EQ(c.receive().json()["object"], "text_completion");
}

TEST_F(ServerTest, MalformedHttpAndExpectContinue) {
  start();
  {
    TestConnection c(port_);
    net::write(c.socket(), net::buffer(std::string("GARBAGE / NOPE\r\n\r\n")));
    auto r = c.receive();
    expect_error_shape(r, 400);
  }
  {
    // curl sends "Expect: 100-continue" for larger bodies and waits for the interim answer.
    TestConnection c(port_);
    const std::string body = chat_body().dump();
    const std::string head =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nExpect: 100-continue\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    net::write(c.socket(), net::buffer(head));
    char buf[64] = {};
    const size_t n = c.socket().read_some(net::buffer(buf, 25));
    EXPECT_EQ(std::string(buf, n).rfind("HTTP/1.1 100 Continue", 0), 0u);
    net::write(c.socket(), net::buffer(body));
    auto r = c.receive();
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(http_call(port_, http::verb::head, "/health").status, 405);
}

TEST_F(ServerTest, Cors) {
  start();
  auto r = get(port_, "/v1/models", {{"Origin", "http://example.test"}});
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  r = http_call(port_, http::verb::options, "/v1/chat/completions", "",
                {{"Origin", "http://example.test"},
                 {"Access-Control-Request-Method", "POST"},
                 {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  EXPECT_NE(r.header("access-control-allow-methods").find("POST"), std::string::npos);
  EXPECT_EQ(r.header("access-control-allow-headers"), "authorization, content-type");
}

TEST_F(ServerTest, CorsRestrictedOriginsAndPreflightWithoutKey) {
  ServerConfig cfg;
  cfg.allowed_origins = {"http://good.test"};
  cfg.api_keys = {"k"};
  start(cfg);
  auto pre = [&](const std::string& origin) {
    return http_call(port_, http::verb::options, "/v1/chat/completions", "",
                     {{"Origin", origin}, {"Access-Control-Request-Method", "POST"}});
  };
  auto r = pre("http://good.test");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("access-control-allow-origin"), "http://good.test");
  r = pre("http://evil.test");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.header("access-control-allow-origin"), "");
  r = get(port_, "/health", {{"Origin", "http://evil.test"}});
  EXPECT_EQ(r.header("access-control-allow-origin"), "");
}

TEST_F(ServerTest, ChatPageAtRootOpenWithoutKeyUnlessTurnedOff) {
  ServerConfig cfg;
  cfg.api_keys = {"sk-page"};
  start(cfg);
  // The page compiled in is src/server/ui/chat.html, byte for byte.
  std::ifstream f(std::string(INFERD_SOURCE_DIR) + "/src/server/ui/chat.html", std::ios::binary);
  std::stringstream file;
  file << f.rdbuf();
  ASSERT_GT(file.str().size(), 1000u);
  // (Compared without printing 20 kB twice on a mismatch: a stale build shows as a size.)
  EXPECT_TRUE(std::string(chat_page()) == file.str())
      << "embedded " << chat_page().size() << " bytes, chat.html " << file.str().size();
  // Served at / (a query string too) without the API key: the page asks for it on a 401.
  for (const char* target : {"/", "/?conversation=1"}) {
    auto r = get(port_, target);
    ASSERT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
    EXPECT_TRUE(r.body == file.str()) << "served " << r.body.size() << " bytes";
    EXPECT_NE(r.header("content-security-policy").find("default-src 'none'"), std::string::npos);
    EXPECT_NE(r.header("content-security-policy").find("connect-src 'self'"), std::string::npos);
  }
  auto r = post(port_, "/", json::object());
  expect_error_shape(r, 405);
  EXPECT_EQ(r.header("allow"), "GET");
  expect_error_shape(get(port_, "/index.html"), 404);
  EXPECT_EQ(metric_value(metrics(), "inferd:http_requests_total",
                         "handler=\"/\",method=\"GET\",status=\"200\""),
            2.0);
  server_->stop();
  server_.reset();
  gen_->shutdown();

  cfg.ui = false;
  start(cfg);
  r = get(port_, "/");
  expect_error_shape(r, 404);
  EXPECT_EQ(r.json()["error"]["code"], "not_found");
}

TEST_F(ServerTest, MetricsCountRequestsTokensAndLatency) {
  start();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(post(port_, "/v1/chat/completions", chat_body("hi", 5)).status, 200);
  json stop_body = {{"prompt", "q"}, {"max_tokens", 30}, {"stop", "wor"}};
  ASSERT_EQ(post(port_, "/v1/completions", stop_body).status, 200);
  expect_error_shape(post(port_, "/v1/chat/completions", json{{"messages", 1}}), 400);
  const auto page = metrics();
  EXPECT_EQ(metric_value(page, "vllm:request_success_total", "\"length\""), 3.0);
  EXPECT_EQ(metric_value(page, "vllm:request_success_total", "\"stop\""), 1.0);
  EXPECT_EQ(metric_value(page, "vllm:prompt_tokens_total"), 3 * 24.0 + 2);
  EXPECT_EQ(metric_value(page, "vllm:generation_tokens_total"), 3 * 5.0 + 9);
  EXPECT_EQ(metric_value(page, "vllm:time_to_first_token_seconds_count"), 4.0);
  EXPECT_EQ(metric_value(page, "vllm:e2e_request_latency_seconds_count"), 4.0);
  EXPECT_EQ(metric_value(page, "vllm:request_time_per_output_token_seconds_count"), 4.0);
  EXPECT_EQ(metric_value(page, "vllm:e2e_request_latency_seconds_bucket", "+Inf"), 4.0);
  EXPECT_EQ(metric_value(page, "vllm:num_requests_running"), 0.0);
  EXPECT_EQ(metric_value(page, "vllm:num_requests_waiting"), 0.0);
  EXPECT_EQ(metric_value(page, "vllm:kv_cache_usage_perc"), 0.0);
  EXPECT_GT(metric_value(page, "vllm:prefix_cache_queries_total"), 0.0);
  EXPECT_EQ(metric_value(page, "vllm:prefix_cache_hits_total"), 32.0);  // 2nd and 3rd chat
  EXPECT_EQ(metric_value(page, "vllm:num_preemptions_total"), 0.0);
  EXPECT_EQ(metric_value(page, "inferd:http_requests_total", "status=\"400\""), 1.0);
  EXPECT_EQ(metric_value(page, "inferd:http_requests_total",
                         "handler=\"/v1/chat/completions\",method=\"POST\",status=\"200\""),
            3.0);
  EXPECT_NE(page.find("# TYPE vllm:time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(page.find("model_name=\"tiny\""), std::string::npos);
}

// vLLM's names and labels (model_name, engine), and the histograms vLLM keeps move: queue, prefill,
// decode and inference times from the engine's RequestTimes, inter-token latency per output,
// the request's n and max_tokens, tokens per step; the old inferd: names are gone.
TEST_F(ServerTest, MetricsUseVllmNamesAndTheirHistogramsMove) {
  FakeConfig fc;
  fc.step = std::chrono::milliseconds(2);
  fc.max_running = 1;  // the second request waits for the first: a queue time above zero
  ServerConfig cfg;
  cfg.cache_config_info = {{"block_size", "16"}, {"num_gpu_blocks", "4096"}};
  start(cfg, fc);
  std::thread other([&] { post(port_, "/v1/chat/completions", chat_body("a", 6)); });
  json body = {{"prompt", "hello"}, {"max_tokens", 7}, {"n", 2}};
  ASSERT_EQ(post(port_, "/v1/completions", body).status, 200);
  other.join();
  const auto page = metrics();
  const std::string ml = "model_name=\"tiny\",engine=\"0\"";
  EXPECT_EQ(metric_value(page, "vllm:num_requests_waiting", ml), 0.0) << page;
  EXPECT_EQ(metric_value(page, "vllm:request_success_total", ml + ",finished_reason=\"length\""),
            3.0);
  for (const char* h : {"vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds",
                        "vllm:request_decode_time_seconds", "vllm:request_inference_time_seconds",
                        "vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds",
                        "vllm:request_params_n", "vllm:request_params_max_tokens",
                        "vllm:request_prompt_tokens", "vllm:request_generation_tokens"}) {
    EXPECT_EQ(metric_value(page, std::string(h) + "_count", ml), 2.0) << h;
    EXPECT_NE(page.find(std::string("# TYPE ") + h + " histogram"), std::string::npos) << h;
  }
  EXPECT_GT(metric_value(page, "vllm:request_queue_time_seconds_sum"), 0.0);
  EXPECT_GT(metric_value(page, "vllm:request_decode_time_seconds_sum"), 0.0);
  EXPECT_LE(metric_value(page, "vllm:request_decode_time_seconds_sum"),
            metric_value(page, "vllm:request_inference_time_seconds_sum"));
  EXPECT_EQ(metric_value(page, "vllm:request_params_n_bucket", "le=\"1.0\""), 1.0);
  EXPECT_EQ(metric_value(page, "vllm:request_params_n_bucket", "le=\"2.0\""), 2.0);
  EXPECT_EQ(metric_value(page, "vllm:request_params_max_tokens_sum"), 13.0);
  // One observation per output that brought tokens, after the first: (6 - 1) + (7 - 1), the
  // n = 2 sequences stepping together.
  EXPECT_EQ(metric_value(page, "vllm:inter_token_latency_seconds_count", ml), 11.0);
  EXPECT_EQ(metric_value(page, "vllm:inter_token_latency_seconds_bucket", "le=\"+Inf\""), 11.0);
  // Tokens per step: 13 one-token or two-token steps, 20 tokens.
  EXPECT_EQ(metric_value(page, "vllm:iteration_tokens_total_count", ml), 13.0);
  EXPECT_EQ(metric_value(page, "vllm:iteration_tokens_total_sum", ml), 20.0);
  EXPECT_EQ(metric_value(page, "vllm:iteration_tokens_total_bucket", "le=\"1.0\""), 6.0);
  EXPECT_EQ(metric_value(page, "vllm:iteration_tokens_total_bucket", "le=\"8.0\""), 13.0);
  EXPECT_EQ(metric_value(page, "vllm:iteration_tokens_total_bucket", "le=\"16384.0\""), 13.0);
  EXPECT_EQ(metric_value(page, "vllm:cache_config_info",
                         "block_size=\"16\",num_gpu_blocks=\"4096\",engine=\"0\""),
            1.0);
  EXPECT_NE(page.find("# TYPE vllm:prefix_cache_hits counter"), std::string::npos);
  EXPECT_NE(page.find("vllm:prefix_cache_queries_total{" + ml + "}"), std::string::npos);
  for (const char* gone : {"inferd:num_requests", "inferd:kv_cache_usage", "inferd:time_to",
                           "inferd:prompt_tokens", "vllm:time_per_output_token_seconds"})
    EXPECT_EQ(page.find(gone), std::string::npos) << gone;
}

TEST_F(ServerTest, DrainFinishesInFlightThenStops) {
  FakeConfig fc;
  fc.step = std::chrono::milliseconds(10);
  start(ServerConfig(), fc);
  auto body = chat_body("hi", 30);
  body["stream"] = true;
  HttpResult r;
  std::thread client([&] { r = post(port_, "/v1/chat/completions", body); });
  for (int i = 0; i < 200 && gen_->num_live() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(server_->active_requests(), 1u);
  std::thread drain([&] { server_->drain_and_stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // Not accepting any more.
  EXPECT_THROW(TestConnection(port_, 2).request(http::verb::get, "/health"), std::exception);
  client.join();
  drain.join();
  EXPECT_EQ(r.status, 200);
  auto ev = sse_events(r.body);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.back(), "[DONE]");
  EXPECT_EQ(json::parse(ev[ev.size() - 2])["choices"][0]["finish_reason"], "length");
}

TEST_F(ServerTest, DrainTimeoutAbortsWith503) {
  ServerConfig cfg;
  cfg.drain_timeout_s = 0.2;
  start(cfg);
  gen_->pause(true);
  HttpResult r;
  std::thread client([&] { r = post(port_, "/v1/chat/completions", chat_body()); });
  for (int i = 0; i < 200 && gen_->num_live() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server_->drain_and_stop();
  client.join();
  expect_error_shape(r, 503);
  EXPECT_EQ(r.json()["error"]["code"], "server_shutdown");
}

TEST_F(ServerTest, HundredsOfConcurrentStreams) {
  FakeConfig fc;
  fc.max_running = 1000;
  fc.step = std::chrono::milliseconds(2);
  ServerConfig cfg;
  start(cfg, fc);
  constexpr int kStreams = 300;
  std::atomic<int> good{0};
  // Generation waits until every stream is open, so all of them are in flight at once.
  gen_->pause(true);
  std::vector<std::thread> ts;
  for (int i = 0; i < kStreams; ++i)
    ts.emplace_back([&, i] {
      auto body = chat_body("s" + std::to_string(i), 20);
      body["stream"] = true;
      try {
        auto r = post(port_, "/v1/chat/completions", body);
        std::string text;
        auto ev = sse_events(r.body);
        for (size_t k = 1; k + 1 < ev.size(); ++k) {
          json c = json::parse(ev[k]);
          if (c["choices"][0]["delta"].contains("content"))
            text += c["choices"][0]["delta"]["content"].get<std::string>();
        }
        if (r.status == 200 && ev.back() == "[DONE]" && text == "Hello world! This is") good++;
      } catch (const std::exception&) {
      }
    });
  for (int i = 0; i < 3000 && gen_->num_live() < kStreams; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(gen_->num_live(), kStreams);
  EXPECT_EQ(server_->active_requests(), size_t(kStreams));
  gen_->pause(false);
  for (auto& t : ts) t.join();
  EXPECT_EQ(good, kStreams);
  EXPECT_EQ(server_->active_requests(), 0u);
}

}  // namespace
}  // namespace inferd::server::testing
