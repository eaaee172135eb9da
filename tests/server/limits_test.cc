// Limits a client cannot cross (issue 32): the per-request caps (n, max_tokens, prompt tokens,
// logprobs, stop strings, logit_bias, constraint size, tools, messages) as a 400 naming the limit
// and the value on every route that takes the field (completions, chat, messages, responses); the
// per-key concurrency limit (429 + Retry-After; the slot given back on completion, error, abort
// and client disconnect); and slow-loris clients (headers or body trickled) cut after the read
// timeouts without an engine request, while normal requests are still served.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

class LimitsTest : public ::testing::Test {
 protected:
  void start() { start(ServerConfig(), FakeConfig()); }
  void start(const ServerConfig& c) { start(c, FakeConfig()); }
  void start(const ServerConfig& c, const FakeConfig& fc) {
    ServerConfig cfg = c;
    gen_ = std::make_shared<FakeGenerator>(fc);
    if (cfg.served_model_names.empty()) cfg.served_model_names = {"tiny"};
    port_ = start_test_server(cfg, gen_, server_);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (gen_) gen_->shutdown();
  }
  static json chat(json extra = json::object()) {
    json b = {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    b.update(extra);
    return b;
  }
  static json completion(json extra = json::object()) {
    json b = {{"model", "tiny"}, {"prompt", "hi"}, {"max_tokens", 4}};
    b.update(extra);
    return b;
  }
  static json messages(json extra = json::object()) {
    json b = {{"model", "tiny"},
              {"max_tokens", 8},
              {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    b.update(extra);
    return b;
  }
  static json responses(json extra = json::object()) {
    json b = {{"model", "tiny"}, {"input", "hi"}, {"store", false}};
    b.update(extra);
    return b;
  }
  // A 400 whose param is `param` and whose message holds every one of `parts`.
  static void expect_400(const HttpResult& r, const std::string& param,
                         const std::vector<std::string>& parts) {
    ASSERT_EQ(r.status, 400) << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    // /v1/messages answers in Anthropic's shape (no param).
    const json& e = j["error"];
    if (e.contains("param")) {
      EXPECT_EQ(e["param"], param) << r.body;
    }
    const std::string msg = e["message"].get<std::string>();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << p << " in " << msg;
  }

  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

// ---- per-request caps ---------------------------------------------------------------------------

TEST_F(LimitsTest, NOverTheLimit) {
  ServerConfig cfg;
  cfg.request_limits.max_n = 4;
  start(cfg);
  expect_400(post(port_, "/v1/chat/completions", chat({{"n", 5}, {"max_tokens", 2}})), "n",
             {"--max-n", "4", "5"});
  expect_400(post(port_, "/v1/completions", completion({{"n", 9}})), "n", {"--max-n", "9"});
  // 3 prompts x n=4 = 12 > 4 x 4 = 16? no: allowed; 5 prompts x 4 = 20 > 16.
  EXPECT_EQ(post(port_, "/v1/completions", completion({{"n", 4}})).status, 200);
  expect_400(
      post(port_, "/v1/completions", completion({{"n", 4}, {"prompt", {"a", "b", "c", "d", "e"}}})),
      "n", {"16", "n=4"});
}

TEST_F(LimitsTest, DefaultNLimitIsOpenAis) {
  start();
  expect_400(post(port_, "/v1/completions", completion({{"n", 129}})), "n", {"128", "129"});
}

TEST_F(LimitsTest, MaxTokensOverTheLimitOnEveryRoute) {
  ServerConfig cfg;
  cfg.request_limits.max_output_tokens = 10;
  start(cfg);
  expect_400(post(port_, "/v1/completions", completion({{"max_tokens", 11}})), "max_tokens",
             {"--max-output-tokens", "10", "11"});
  expect_400(post(port_, "/v1/chat/completions", chat({{"max_completion_tokens", 12}})),
             "max_completion_tokens", {"--max-output-tokens", "12"});
  expect_400(post(port_, "/v1/messages", messages({{"max_tokens", 13}})), "max_tokens",
             {"--max-output-tokens", "10", "13"});
  expect_400(post(port_, "/v1/responses", responses({{"max_output_tokens", 14}})),
             "max_output_tokens", {"--max-output-tokens", "10", "14"});
  // At the limit: fine.
  EXPECT_EQ(post(port_, "/v1/completions", completion({{"max_tokens", 10}})).status, 200);
}

TEST_F(LimitsTest, RequestWithoutMaxTokensGetsTheLimit) {
  ServerConfig cfg;
  cfg.request_limits.max_output_tokens = 7;
  start(cfg);
  const auto r = post(port_, "/v1/chat/completions", chat());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(gen_->last_request().params.max_tokens, 7);
  EXPECT_LE(r.json()["usage"]["completion_tokens"].get<int>(), 7);
}

TEST_F(LimitsTest, PromptTokensOverTheLimit) {
  ServerConfig cfg;
  cfg.request_limits.max_prompt_tokens = 20;
  start(cfg);
  const std::string long_text(40, 'x');  // one token a byte in the fake tokenizer
  expect_400(post(port_, "/v1/completions", completion({{"prompt", long_text}})), "prompt",
             {"--max-prompt-tokens", "20", "41 tokens"});
  expect_400(post(port_, "/v1/chat/completions",
                  chat({{"messages", {{{"role", "user"}, {"content", long_text}}}}})),
             "messages", {"--max-prompt-tokens", "20"});
  expect_400(post(port_, "/v1/responses", responses({{"input", long_text}})), "input",
             {"--max-prompt-tokens", "20"});
  expect_400(post(port_, "/v1/messages",
                  messages({{"messages", {{{"role", "user"}, {"content", long_text}}}}})),
             "messages", {"--max-prompt-tokens", "20"});
  EXPECT_EQ(post(port_, "/v1/completions", completion({{"prompt", "short"}})).status, 200);
}

TEST_F(LimitsTest, PromptPastTheContextNamesIt) {
  FakeConfig fc;
  fc.max_model_len = 32;
  start(ServerConfig(), fc);
  const auto r = post(port_, "/v1/completions", completion({{"prompt", std::string(64, 'x')}}));
  expect_400(r, "prompt", {"maximum context length is 32"});
  EXPECT_EQ(r.json()["error"]["code"], "context_length_exceeded");
}

TEST_F(LimitsTest, LogprobsOverMaxLogprobs) {
  start();  // the fake's max_logprobs: 20
  const auto c = post(port_, "/v1/completions", completion({{"logprobs", 21}}));
  expect_400(c, "logprobs", {"20", "21"});
  const auto ch =
      post(port_, "/v1/chat/completions", chat({{"logprobs", true}, {"top_logprobs", 25}}));
  expect_400(ch, "top_logprobs", {"20", "25"});
  EXPECT_EQ(post(port_, "/v1/completions", completion({{"logprobs", 20}})).status, 200);
}

TEST_F(LimitsTest, StopStringsCountAndLength) {
  ServerConfig cfg;
  cfg.request_limits.max_stop = 2;
  cfg.request_limits.max_stop_bytes = 5;
  start(cfg);
  expect_400(post(port_, "/v1/chat/completions", chat({{"stop", {"a", "b", "c"}}})), "stop",
             {"at most 2", "got 3"});
  expect_400(post(port_, "/v1/completions", completion({{"stop", "toolong"}})), "stop",
             {"at most 5 bytes", "got 7"});
  expect_400(post(port_, "/v1/completions", completion({{"stop", {"ok", "toolong"}}})), "stop[1]",
             {"at most 5 bytes", "got 7"});
  expect_400(post(port_, "/v1/messages", messages({{"stop_sequences", {"a", "b", "c"}}})),
             "stop_sequences", {"2", "3"});
  expect_400(post(port_, "/v1/messages", messages({{"stop_sequences", {"toolong"}}})),
             "stop_sequences[0]", {"5", "7"});
  EXPECT_EQ(post(port_, "/v1/completions", completion({{"stop", {"ab", "cd"}}})).status, 200);
}

TEST_F(LimitsTest, LogitBiasEntries) {
  ServerConfig cfg;
  cfg.request_limits.max_logit_bias = 2;
  start(cfg);
  expect_400(post(port_, "/v1/completions",
                  completion({{"logit_bias", {{"10", 1}, {"11", 1}, {"12", 1}}}})),
             "logit_bias", {"at most 2", "got 3"});
}

TEST_F(LimitsTest, ConstraintSize) {
  ServerConfig cfg;
  cfg.request_limits.max_schema_bytes = 64;
  start(cfg);
  const std::string big(100, 'a');
  expect_400(post(port_, "/v1/completions", completion({{"structured_outputs", {{"regex", big}}}})),
             "structured_outputs", {"at most 64 bytes"});
  expect_400(
      post(
          port_, "/v1/completions",
          completion({{"structured_outputs", {{"grammar", fmt::format("root ::= \"{}\"", big)}}}})),
      "structured_outputs", {"at most 64 bytes"});
  expect_400(post(port_, "/v1/chat/completions", chat({{"guided_regex", big}})), "guided_regex",
             {"at most 64 bytes"});
  json schema = {{"type", "object"}, {"properties", {{big, {{"type", "string"}}}}}};
  expect_400(post(port_, "/v1/chat/completions",
                  chat({{"response_format",
                         {{"type", "json_schema"},
                          {"json_schema", {{"name", "x"}, {"schema", schema}}}}}})),
             "response_format", {"at most 64 bytes"});
  expect_400(
      post(port_, "/v1/responses",
           responses(
               {{"text",
                 {{"format", {{"type", "json_schema"}, {"name", "x"}, {"schema", schema}}}}}})),
      "text.format", {"at most 64 bytes"});
}

json chat_tools(int n) {
  json t = json::array();
  for (int i = 0; i < n; ++i)
    t.push_back({{"type", "function"},
                 {"function", {{"name", fmt::format("f{}", i)}, {"parameters", json::object()}}}});
  return t;
}

TEST_F(LimitsTest, ToolsCountOnEveryRoute) {
  ServerConfig cfg;
  cfg.request_limits.max_tools = 2;
  start(cfg);
  expect_400(post(port_, "/v1/chat/completions", chat({{"tools", chat_tools(3)}})), "tools",
             {"maximum length 2", "length 3"});
  json mt = json::array();
  json rt = json::array();
  for (int i = 0; i < 3; ++i) {
    mt.push_back({{"name", fmt::format("f{}", i)}, {"input_schema", {{"type", "object"}}}});
    rt.push_back({{"type", "function"}, {"name", fmt::format("f{}", i)}});
  }
  expect_400(post(port_, "/v1/messages", messages({{"tools", mt}})), "tools", {"2", "3"});
  expect_400(post(port_, "/v1/responses", responses({{"tools", rt}})), "tools",
             {"maximum length 2", "length 3"});
}

TEST_F(LimitsTest, ToolsBytes) {
  ServerConfig cfg;
  cfg.request_limits.max_tools_bytes = 100;
  start(cfg);
  expect_400(post(port_, "/v1/chat/completions", chat({{"tools", chat_tools(3)}})), "tools",
             {"at most 100 bytes"});
}

TEST_F(LimitsTest, MessagesCount) {
  ServerConfig cfg;
  cfg.request_limits.max_messages = 2;
  start(cfg);
  json msgs = json::array();
  for (int i = 0; i < 3; ++i) msgs.push_back({{"role", "user"}, {"content", "hi"}});
  expect_400(post(port_, "/v1/chat/completions", chat({{"messages", msgs}})), "messages",
             {"2", "3"});
}

// ---- per-key concurrency ---------------------------------------------------------------------

const Headers kKeyA = {{"Authorization", "Bearer key-a"}};
const Headers kKeyB = {{"Authorization", "Bearer key-b"}};

class ConcurrencyTest : public LimitsTest {
 protected:
  void start_limited(int64_t per_key, double request_timeout_s = 0,
                     const FakeConfig& fc = FakeConfig()) {
    ServerConfig cfg;
    cfg.api_keys = {"key-a", "key-b"};
    cfg.max_concurrent_per_key = per_key;
    cfg.retry_after_s = 2;
    cfg.request_timeout_s = request_timeout_s;
    start(cfg, fc);
  }
  void wait_live(int n) {
    for (int i = 0; i < 1000 && gen_->num_live() != n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(gen_->num_live(), n);
  }
  void wait_in_flight(const std::string& key, int64_t n) {
    for (int i = 0; i < 1000 && server_->front().concurrency().in_flight(key) != n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(server_->front().concurrency().in_flight(key), n);
  }
  void expect_429(const HttpResult& r) {
    ASSERT_EQ(r.status, 429) << r.body;
    EXPECT_EQ(r.header("retry-after"), "2");
    EXPECT_EQ(r.json()["error"]["code"], "concurrency_limit_exceeded");
    const std::string msg = r.json()["error"]["message"].get<std::string>();
    EXPECT_NE(msg.find("--max-concurrent-requests-per-key"), std::string::npos) << msg;
    EXPECT_NE(msg.find("limit is 1"), std::string::npos) << msg;
  }
};

TEST_F(ConcurrencyTest, OverTheLimit429AndReleasedOnCompletion) {
  start_limited(1);
  gen_->pause(true);
  std::thread first(
      [&] { EXPECT_EQ(post(port_, "/v1/completions", completion(), kKeyA).status, 200); });
  wait_live(1);
  expect_429(post(port_, "/v1/completions", completion(), kKeyA));
  expect_429(post(port_, "/v1/chat/completions", chat({{"max_tokens", 2}}), kKeyA));
  // Another key is not held back.
  std::thread other(
      [&] { EXPECT_EQ(post(port_, "/v1/completions", completion(), kKeyB).status, 200); });
  wait_live(2);
  gen_->pause(false);
  first.join();
  other.join();
  wait_in_flight("key-a", 0);
  EXPECT_EQ(post(port_, "/v1/completions", completion(), kKeyA).status, 200);
  // A refused request took no rate or engine slot: two engine requests, then the third.
  EXPECT_EQ(gen_->num_submitted(), 3);
}

TEST_F(ConcurrencyTest, ReleasedOnError) {
  // The engine refuses the request at submission (its queue is full): the slot comes back.
  FakeConfig fc;
  fc.max_queue = 1;
  start_limited(2, 0, fc);
  gen_->pause(true);
  std::thread first(
      [&] { EXPECT_EQ(post(port_, "/v1/completions", completion(), kKeyB).status, 200); });
  wait_live(1);
  const auto r = post(port_, "/v1/completions", completion(), kKeyA);
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.json()["error"]["code"], "queue_full");
  EXPECT_EQ(server_->front().concurrency().in_flight("key-a"), 0);
  // And a request that fails validation never takes one.
  EXPECT_EQ(post(port_, "/v1/completions", completion({{"max_tokens", -5}}), kKeyA).status, 400);
  EXPECT_EQ(server_->front().concurrency().in_flight("key-a"), 0);
  gen_->pause(false);
  first.join();
}

TEST_F(ConcurrencyTest, ReleasedOnAbort) {
  // --request-timeout aborts the engine request (408): the slot comes back.
  start_limited(1, 0.2);
  gen_->pause(true);
  const auto r = post(port_, "/v1/completions", completion(), kKeyA);
  EXPECT_EQ(r.status, 408) << r.body;
  wait_in_flight("key-a", 0);
  gen_->pause(false);
  EXPECT_EQ(post(port_, "/v1/completions", completion(), kKeyA).status, 200);
}

TEST_F(ConcurrencyTest, ReleasedOnClientDisconnect) {
  start_limited(1);
  gen_->pause(true);
  {
    TestConnection c(port_);
    c.send(http::verb::post, "/v1/completions", completion({{"stream", true}}).dump(), kKeyA);
    wait_live(1);
    wait_in_flight("key-a", 1);
    expect_429(post(port_, "/v1/completions", completion(), kKeyA));
    c.close();
  }
  wait_in_flight("key-a", 0);
  gen_->pause(false);
  EXPECT_EQ(post(port_, "/v1/completions", completion(), kKeyA).status, 200);
  EXPECT_EQ(gen_->num_aborted(), 1);
}

TEST_F(ConcurrencyTest, CountsEveryRoute) {
  start_limited(1);
  gen_->pause(true);
  std::thread first([&] { EXPECT_EQ(post(port_, "/v1/messages", messages(), kKeyA).status, 200); });
  wait_live(1);
  expect_429(post(port_, "/v1/responses", responses(), kKeyA));
  expect_429(post(port_, "/v1/completions", completion(), kKeyA));
  gen_->pause(false);
  first.join();
}

TEST(ConcurrencyLimiterTest, SlotsAreGivenBackOnce) {
  ConcurrencyLimiter lim(2);
  bool refused = false;
  auto a = lim.try_acquire("k", refused);
  EXPECT_TRUE(a && !refused);
  auto b = lim.try_acquire("k", refused);
  EXPECT_TRUE(b && !refused);
  auto c = lim.try_acquire("k", refused);
  EXPECT_TRUE(!c && refused);
  EXPECT_EQ(lim.in_flight("k"), 2);
  ConcurrencyLimiter::Slot moved = std::move(a);
  a.release();  // moved from: holds nothing
  EXPECT_EQ(lim.in_flight("k"), 2);
  moved.release();
  moved.release();
  EXPECT_EQ(lim.in_flight("k"), 1);
  { auto d = lim.try_acquire("k", refused); }
  EXPECT_EQ(lim.in_flight("k"), 1);
  ConcurrencyLimiter off(0);
  auto e = off.try_acquire("k", refused);
  EXPECT_TRUE(!e && !refused);
}

// ---- slow loris ------------------------------------------------------------------------------

// A raw client that sends `text` one byte every `gap`, until it is sent or the server closes the
// connection; returns true when the server closed it first.
bool trickle(uint16_t port, const std::string& text, std::chrono::milliseconds gap,
             std::chrono::milliseconds* cut_after = nullptr) {
  net::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  const auto t0 = std::chrono::steady_clock::now();
  for (char ch : text) {
    beast::error_code ec;
    net::write(s, net::buffer(&ch, 1), ec);
    // A closed peer shows as a failed write or a readable EOF.
    s.non_blocking(true);
    char buf[256];
    const size_t n = s.read_some(net::buffer(buf), ec);
    s.non_blocking(false);
    if ((ec && ec != net::error::would_block) || n > 0) {
      if (cut_after)
        *cut_after = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
      return true;
    }
    std::this_thread::sleep_for(gap);
  }
  return false;
}

const std::string kTrickledRequest =
    "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";

TEST_F(LimitsTest, SlowHeadersAreCut) {
  ServerConfig cfg;
  cfg.http.header_timeout = std::chrono::milliseconds(1500);
  start(cfg);
  std::chrono::milliseconds cut{0};
  // One byte a second: cut after the header timeout, long before the header is complete.
  EXPECT_TRUE(trickle(port_, kTrickledRequest, std::chrono::milliseconds(1000), &cut));
  EXPECT_GE(cut.count(), 1400);
  EXPECT_LE(cut.count(), 4000);
  EXPECT_EQ(gen_->num_submitted(), 0);
}

TEST_F(LimitsTest, SlowBodyIsCutWithoutAnEngineRequest) {
  ServerConfig cfg;
  cfg.http.body_timeout = std::chrono::milliseconds(1000);
  start(cfg);
  const std::string body = completion().dump();
  const std::string head =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
      "application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  net::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
  net::write(s, net::buffer(head));
  std::chrono::milliseconds cut{0};
  const auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  for (size_t i = 0; i < body.size() && !closed; ++i) {
    beast::error_code ec;
    net::write(s, net::buffer(&body[i], 1), ec);
    s.non_blocking(true);
    char buf[64];
    const size_t n = s.read_some(net::buffer(buf), ec);
    s.non_blocking(false);
    closed = (ec && ec != net::error::would_block) || n > 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  cut =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_TRUE(closed);
  EXPECT_LE(cut.count(), 3000);
  EXPECT_EQ(gen_->num_submitted(), 0);
}

TEST_F(LimitsTest, ManySlowClientsDoNotStopNormalRequests) {
  ServerConfig cfg;
  cfg.http.header_timeout = std::chrono::milliseconds(2000);
  start(cfg);                // two io threads
  constexpr int kSlow = 24;  // far more slow clients than io threads
  std::atomic<int> cut{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlow; ++i)
    slow.emplace_back([&] {
      if (trickle(port_, kTrickledRequest, std::chrono::milliseconds(200))) ++cut;
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = post(port_, "/v1/completions", completion());
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  }
  for (auto& t : slow) t.join();
  EXPECT_EQ(cut.load(), kSlow);
  EXPECT_EQ(gen_->num_submitted(), 5);
}

TEST_F(LimitsTest, IdleKeepAliveIsNotCutByTheHeaderTimeout) {
  // The header timeout runs from a request's first byte: an idle keep-alive connection waits for
  // keep_alive_timeout instead.
  ServerConfig cfg;
  cfg.http.header_timeout = std::chrono::milliseconds(300);
  start(cfg);
  TestConnection c(port_);
  EXPECT_EQ(c.request(http::verb::post, "/v1/completions", completion().dump()).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(c.request(http::verb::post, "/v1/completions", completion().dump()).status, 200);
}

}  // namespace
}  // namespace inferd::server::testing
