// POST /v1/embeddings against the fake generator (which pools deterministically: fake_embedding):
// inputs as text, token ids and batches in order, float and base64, dimensions, normalisation,
// truncation, chat messages, every bad field a 400 naming it, the --task gates on both sides,
// and admission (auth, queue, rate limits, timeout, disconnect, metrics, the log line).
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <sstream>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "server/embedding_request.h"
#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;

FakeConfig embed_config() {
  FakeConfig fc;
  fc.task = ModelTask::kEmbed;
  return fc;
}

class EmbeddingTest : public ::testing::Test {
 protected:
  void start(const ServerConfig& c = ServerConfig(), const FakeConfig& fc = embed_config()) {
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
  HttpResult embed(const json& body,
                   const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return post(port_, "/v1/embeddings", body, headers);
  }
  // What the fake returns for `ids` (normalised unless told otherwise, cut to `dims`).
  std::vector<float> expected(const std::vector<int32_t>& ids, bool normalize = true,
                              int32_t dims = 0) const {
    std::vector<float> v = fake_embedding(ids, 16);
    if (dims > 0) v.resize(size_t(dims));
    if (normalize) {
      double sq = 0;
      for (float x : v) sq += double(x) * x;
      const float inv = float(1.0 / std::sqrt(sq));
      for (float& x : v) x *= inv;
    }
    return v;
  }
  std::vector<int32_t> ids_of(const std::string& text, bool special = true) const {
    return gen_->encode(text, special);
  }

  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

void expect_vector(const json& got, const std::vector<float>& want) {
  ASSERT_TRUE(got.is_array()) << got.dump();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i].get<double>(), want[i], 1e-6) << i;
}

void expect_error(const HttpResult& r, int status, const std::string& param,
                  const std::string& text = "") {
  EXPECT_EQ(r.status, status) << r.body;
  const json j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
  if (!param.empty()) {
    EXPECT_EQ(j["error"]["param"], param) << r.body;
  }
  if (!text.empty()) {
    EXPECT_NE(j["error"]["message"].get<std::string>().find(text), std::string::npos) << r.body;
  }
}

std::vector<float> decode_base64(const std::string& s, bool big_endian = false) {
  auto val = [](char c) -> uint32_t {
    if (c >= 'A' && c <= 'Z') return uint32_t(c - 'A');
    if (c >= 'a' && c <= 'z') return uint32_t(c - 'a' + 26);
    if (c >= '0' && c <= '9') return uint32_t(c - '0' + 52);
    return c == '+' ? 62u : 63u;
  };
  std::string bytes;
  for (size_t i = 0; i + 3 < s.size(); i += 4) {
    uint32_t chunk = 0;
    int pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      chunk <<= 6;
      if (s[i + j] == '=')
        ++pad;
      else
        chunk |= val(s[i + j]);
    }
    for (int j = 0; j < 3 - pad; ++j) bytes += char((chunk >> (16 - 8 * j)) & 0xff);
  }
  std::vector<float> out;
  for (size_t i = 0; i + 3 < bytes.size(); i += 4) {
    uint32_t u = 0;
    for (int b = 0; b < 4; ++b) {
      const uint32_t byte = static_cast<unsigned char>(bytes[i + size_t(b)]);
      u |= byte << (big_endian ? 8 * (3 - b) : 8 * b);
    }
    out.push_back(std::bit_cast<float>(u));
  }
  return out;
}

TEST_F(EmbeddingTest, OneStringIsOneNormalisedVector) {
  start();
  auto r = embed({{"model", "tiny"}, {"input", "hello world"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["id"].get<std::string>().rfind("embd-", 0), 0u);
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["object"], "embedding");
  EXPECT_EQ(j["data"][0]["index"], 0);
  expect_vector(j["data"][0]["embedding"], expected(ids_of("hello world")));
  // BOS + 11 bytes: add_special_tokens defaults to true.
  EXPECT_EQ(j["usage"]["prompt_tokens"], 12);
  EXPECT_EQ(j["usage"]["total_tokens"], 12);
  const GenerateRequest last = gen_->last_request();
  ASSERT_TRUE(last.pooling.has_value());
  EXPECT_FALSE(last.pooling->normalize.has_value());  // the model's default
  EXPECT_FALSE(last.pooling->dimensions.has_value());
  // Without `model`: the default name; add_special_tokens false drops BOS.
  r = embed({{"input", "hello world"}, {"add_special_tokens", false}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 11);
  expect_vector(r.json()["data"][0]["embedding"], expected(ids_of("hello world", false)));
}

// SageMaker's /invocations on an embedding server answers embeddings, as vLLM routes it.
TEST_F(EmbeddingTest, InvocationsOnAnEmbeddingServer) {
  start();
  auto r = post(port_, "/invocations", json{{"input", "hello world"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["object"], "list");
  expect_vector(r.json()["data"][0]["embedding"], expected(ids_of("hello world")));
}

TEST_F(EmbeddingTest, BatchesAnswerInInputOrder) {
  start();
  const std::vector<std::string> texts = {"alpha", "a much longer second input", "c"};
  auto r = embed({{"input", texts}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  ASSERT_EQ(j["data"].size(), 3u);
  int64_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(j["data"][i]["index"], i);
    expect_vector(j["data"][i]["embedding"], expected(ids_of(texts[i])));
    tokens += int64_t(ids_of(texts[i]).size());
  }
  EXPECT_EQ(j["usage"]["prompt_tokens"], tokens);
  EXPECT_EQ(gen_->num_submitted(), 3);
}

TEST_F(EmbeddingTest, TokenIdsAndBatchesOfThem) {
  start();
  auto r = embed({{"input", {5, 6, 7}}});
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json()["data"].size(), 1u);
  expect_vector(r.json()["data"][0]["embedding"], expected({5, 6, 7}));
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 3);
  r = embed({{"input", {{5, 6}, {7, 8, 9}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json()["data"].size(), 2u);
  expect_vector(r.json()["data"][0]["embedding"], expected({5, 6}));
  expect_vector(r.json()["data"][1]["embedding"], expected({7, 8, 9}));
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 5);
}

TEST_F(EmbeddingTest, Base64IsLittleEndianFloat32) {
  start();
  auto r = embed({{"input", {"one", "two"}}, {"encoding_format", "base64"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  for (size_t i = 0; i < 2; ++i) {
    const json& e = j["data"][i]["embedding"];
    ASSERT_TRUE(e.is_string());
    const std::vector<float> got = decode_base64(e.get<std::string>());
    const std::vector<float> want = expected(ids_of(i == 0 ? "one" : "two"));
    ASSERT_EQ(got, want);  // bit-exact
  }
  r = embed({{"input", "one"}, {"encoding_format", "base64"}, {"endianness", "big"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(decode_base64(r.json()["data"][0]["embedding"].get<std::string>(), true),
            expected(ids_of("one")));
  // Known bytes: 1.0f is 00 00 80 3f.
  const float one[1] = {1.0f};
  EXPECT_EQ(embedding_base64(one), "AACAPw==");
  EXPECT_EQ(embedding_base64(one, true), "P4AAAA==");
}

TEST_F(EmbeddingTest, NormalizeCanBeTurnedOff) {
  start();
  for (const char* field : {"normalize", "use_activation"}) {
    auto r = embed({{"input", {5, 6, 7}}, {field, false}});
    ASSERT_EQ(r.status, 200) << r.body;
    expect_vector(r.json()["data"][0]["embedding"], expected({5, 6, 7}, false));
  }
  expect_error(embed({{"input", "a"}, {"normalize", true}, {"use_activation", false}}), 400,
               "use_activation");
  EXPECT_EQ(embed({{"input", "a"}, {"normalize", true}, {"use_activation", true}}).status, 200);
}

TEST_F(EmbeddingTest, DimensionsOnlyForMatryoshkaModels) {
  start();
  auto r = embed({{"input", "a"}, {"dimensions", 8}});
  expect_error(r, 400, "dimensions", "does not support matryoshka representation");
  TearDown();

  FakeConfig fc = embed_config();
  fc.pooling.matryoshka = true;  // any size
  start(ServerConfig(), fc);
  r = embed({{"input", {5, 6, 7}}, {"dimensions", 5}});
  ASSERT_EQ(r.status, 200) << r.body;
  expect_vector(r.json()["data"][0]["embedding"], expected({5, 6, 7}, true, 5));
  EXPECT_EQ(gen_->last_request().pooling->dimensions, 5);
  expect_error(embed({{"input", "a"}, {"dimensions", 0}}), 400, "dimensions");
  // More than the model has: the engine's refusal, named by the body's field.
  expect_error(embed({{"input", {"a", "b"}}, {"dimensions", 32}}), 400, "dimensions");
  TearDown();

  fc.pooling.dimensions = {4, 8};  // only these
  start(ServerConfig(), fc);
  EXPECT_EQ(embed({{"input", "a"}, {"dimensions", 8}}).status, 200);
  expect_error(embed({{"input", "a"}, {"dimensions", 5}}), 400, "dimensions", "[4, 8]");
}

TEST_F(EmbeddingTest, TruncatePromptTokens) {
  FakeConfig fc = embed_config();
  fc.max_model_len = 8;
  start(ServerConfig(), fc);
  const std::vector<int32_t> ids = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  expect_error(embed({{"input", ids}}), 400, "input", "maximum context length is 8");
  EXPECT_EQ(embed({{"input", ids}}).json()["error"]["code"], "context_length_exceeded");
  auto r = embed({{"input", ids}, {"truncate_prompt_tokens", 3}});
  ASSERT_EQ(r.status, 200) << r.body;
  expect_vector(r.json()["data"][0]["embedding"], expected({17, 18, 19}));  // the last 3
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 3);
  r = embed({{"input", ids}, {"truncate_prompt_tokens", 3}, {"truncation_side", "right"}});
  ASSERT_EQ(r.status, 200) << r.body;
  expect_vector(r.json()["data"][0]["embedding"], expected({10, 11, 12}));
  r = embed({{"input", ids}, {"truncate_prompt_tokens", -1}});  // to max_model_len
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 8);
  expect_error(embed({{"input", ids}, {"truncate_prompt_tokens", 9}}), 400,
               "truncate_prompt_tokens");
  expect_error(embed({{"input", ids}, {"truncate_prompt_tokens", 0}}), 400,
               "truncate_prompt_tokens");
  expect_error(embed({{"input", ids}, {"truncate_prompt_tokens", -2}}), 400,
               "truncate_prompt_tokens");
  // Text is truncated after tokenization too; in a batch the long one is named.
  expect_error(embed({{"input", {"short", "far too long for eight"}}}), 400, "input[1]");
  r = embed({{"input", {"short", "far too long for eight"}}, {"truncate_prompt_tokens", 8}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 6 + 8);
}

TEST_F(EmbeddingTest, ChatMessagesAreRenderedByTheTemplate) {
  start();
  const json msgs = json::array({{{"role", "user"}, {"content", "find me"}}});
  auto r = embed({{"messages", msgs}});
  ASSERT_EQ(r.status, 200) << r.body;
  // The fake template, no generation prompt, no BOS (the template's business).
  expect_vector(r.json()["data"][0]["embedding"], expected(ids_of("<|user|>find me\n", false)));
  r = embed({{"messages", msgs}, {"add_generation_prompt", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  expect_vector(r.json()["data"][0]["embedding"],
                expected(ids_of("<|user|>find me\n<|assistant|>", false)));
  expect_error(embed({{"messages", json::array()}}), 400, "messages");
  expect_error(embed({{"messages", msgs}, {"input", "x"}}), 400, "messages");
  expect_error(embed({{"messages", msgs}, {"chat_template_kwargs", {{"raise", 1}}}}), 400,
               "messages", "chat template failed");
}

TEST_F(EmbeddingTest, EveryBadFieldIsA400NamingItAndTheServerKeepsServing) {
  FakeConfig fc = embed_config();
  fc.max_model_len = 64;
  start(ServerConfig(), fc);
  struct Case {
    json body;
    std::string param;
    std::string text;
  };
  const std::vector<Case> cases = {
      {json::object(), "input", "Missing required parameter"},
      {{{"input", ""}}, "input", "empty string"},
      {{{"input", json::array()}}, "input", "empty array"},
      {{{"input", {"a", ""}}}, "input[1]", "empty string"},
      {{{"input", {"a", 3}}}, "input[1]", "a string"},
      {{{"input", {json::array()}}}, "input[0]", "empty array"},
      {{{"input", {{1, 2}, 3}}}, "input[1]", "array of token ids"},
      {{{"input", {1, "a"}}}, "input[1]", "integer"},
      {{{"input", {1, 2, 999}}}, "input[2]", "outside the vocabulary"},
      {{{"input", {{1}, {2, -1}}}}, "input[1][1]", "outside the vocabulary"},
      {{{"input", 42}}, "input", "a string"},
      {{{"input", json::array({json{{"role", "user"}}})}}, "input[0]", ""},
      {{{"input", std::string(100, 'x')}}, "input", "maximum context length is 64"},
      {{{"input", "a"}, {"foo", 1}}, "foo", "Unrecognized request argument supplied: foo"},
      {{{"input", "a"}, {"temperature", 0.5}}, "temperature", "Unrecognized"},
      {{{"input", "a"}, {"encoding_format", "bytes"}}, "encoding_format", "'float' and 'base64'"},
      {{{"input", "a"}, {"encoding_format", 1}}, "encoding_format", "a string"},
      {{{"input", "a"}, {"embed_dtype", "float16"}}, "embed_dtype", "float32"},
      {{{"input", "a"}, {"endianness", "middle"}}, "endianness", ""},
      {{{"input", "a"}, {"dimensions", "8"}}, "dimensions", "an integer"},
      {{{"input", "a"}, {"normalize", "yes"}}, "normalize", "a boolean"},
      {{{"input", "a"}, {"user", 5}}, "user", "a string"},
      {{{"input", "a"}, {"priority", 1.5}}, "priority", "an integer"},
      {{{"input", "a"}, {"truncation_side", "middle"}}, "truncation_side", ""},
      {{{"input", "a"}, {"chat_template", "{{x}}"}}, "chat_template", "not supported"},
      {{{"input", "a"}, {"cache_salt", "s"}}, "cache_salt", "not supported"},
      {{{"input", "a"}, {"padding", "max_length"}}, "padding", "do_not_pad"},
      {{{"input", "a"}, {"add_generation_prompt", true}}, "add_generation_prompt", "'messages'"},
      {{{"input", "a"}, {"add_special_tokens", 1}}, "add_special_tokens", "a boolean"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body.dump());
    expect_error(embed(c.body), 400, c.param, c.text);
  }
  expect_error(embed({{"input", "a"}, {"model", "nope"}}), 404, "model");
  // Defaults accepted where they change nothing.
  EXPECT_EQ(embed({{"input", "a"},
                   {"padding", "do_not_pad"},
                   {"endianness", "native"},
                   {"embed_dtype", "float32"},
                   {"encoding_format", "float"},
                   {"user", "u1"},
                   {"priority", -1},
                   {"model", "tiny-alias"}})
                .status,
            200);
  expect_error(post(port_, "/v1/embeddings", json::array({1})), 400, "");
  auto r = http_call(port_, http::verb::get, "/v1/embeddings");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "POST");
  EXPECT_EQ(gen_->num_live(), 0);
}

TEST_F(EmbeddingTest, TaskGatesBothWays) {
  start(ServerConfig(), FakeConfig());  // a generation model
  auto r = embed({{"input", "a"}});
  expect_error(r, 400, "", "--task embed");
  EXPECT_EQ(r.json()["error"]["code"], "model_not_embedding");
  EXPECT_EQ(gen_->num_submitted(), 0);
  TearDown();

  start();  // an embedding model
  r = post(port_, "/v1/completions", {{"prompt", "a"}, {"max_tokens", 2}});
  expect_error(r, 400, "", "/v1/embeddings");
  EXPECT_NE(r.body.find("/v1/completions"), std::string::npos);
  r = post(port_, "/v1/chat/completions",
           {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}});
  expect_error(r, 400, "", "--task embed");
  EXPECT_EQ(gen_->num_submitted(), 0);
}

TEST_F(EmbeddingTest, AuthRateLimitAndQueueAdmission) {
  ServerConfig cfg;
  cfg.api_keys = {"sk-good"};
  cfg.rate_limit_tpm = 20;
  cfg.retry_after_s = 2;
  FakeConfig fc = embed_config();
  fc.max_queue = 2;
  start(cfg, fc);
  const std::vector<std::pair<std::string, std::string>> key = {
      {"Authorization", "Bearer sk-good"}};
  auto r = embed({{"input", "a"}});
  expect_error(r, 401, "");
  // 12 tokens fit the 20 a minute; the next 12 do not.
  EXPECT_EQ(embed({{"input", "hello world"}}, key).status, 200);
  r = embed({{"input", "hello world"}}, key);
  expect_error(r, 429, "");
  EXPECT_EQ(r.json()["error"]["code"], "rate_limit_exceeded");
  TearDown();

  cfg.rate_limit_tpm = 0;
  start(cfg, fc);
  gen_->pause(true);
  std::thread t([&] { EXPECT_EQ(embed({{"input", "a"}}, key).status, 200); });
  for (int i = 0; i < 500 && gen_->num_live() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // A batch of two against a queue with room for one: the second is refused, the first aborted.
  r = embed({{"input", {"b", "c"}}}, key);
  expect_error(r, 429, "");
  EXPECT_EQ(r.json()["error"]["code"], "queue_full");
  EXPECT_EQ(r.header("retry-after"), "2");
  gen_->pause(false);
  t.join();
  for (int i = 0; i < 300 && gen_->num_live() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(gen_->num_live(), 0);
  EXPECT_EQ(gen_->num_aborted(), 1);
}

TEST_F(EmbeddingTest, TimeoutAndDisconnectAbortEveryInput) {
  ServerConfig cfg;
  cfg.request_timeout_s = 0.3;
  start(cfg);
  gen_->pause(true);
  auto r = embed({{"input", {"a", "b", "c"}}});
  expect_error(r, 408, "");
  EXPECT_EQ(r.json()["error"]["code"], "request_timeout");
  for (int i = 0; i < 300 && gen_->num_live() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(gen_->num_aborted(), 3);
  EXPECT_EQ(gen_->num_live(), 0);
  TearDown();

  start();
  gen_->pause(true);
  {
    TestConnection c(port_);
    c.send(http::verb::post, "/v1/embeddings", json{{"input", {"a", "b"}}}.dump());
    for (int i = 0; i < 200 && gen_->num_live() < 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    c.close();
  }
  for (int i = 0; i < 300 && gen_->num_live() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(gen_->num_aborted(), 2);
  EXPECT_EQ(gen_->num_live(), 0);
  gen_->pause(false);
  EXPECT_EQ(embed({{"input", "still serving"}}).status, 200);
}

TEST_F(EmbeddingTest, DrainAbortsWith503) {
  ServerConfig cfg;
  cfg.drain_timeout_s = 0.2;
  start(cfg);
  gen_->pause(true);
  HttpResult r;
  std::thread t([&] { r = embed({{"input", "a"}}); });
  for (int i = 0; i < 500 && gen_->num_live() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server_->drain_and_stop();
  t.join();
  expect_error(r, 503, "");
  EXPECT_EQ(r.json()["error"]["code"], "server_shutdown");
}

TEST_F(EmbeddingTest, MetricsAndOneLogLine) {
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
  ServerConfig cfg;
  cfg.log_prompts = true;
  start(cfg);
  ASSERT_EQ(embed({{"input", {"SECRET one", "two"}}, {"user", "u7"}}).status, 200);
  const std::string page = get(port_, "/metrics").body;
  EXPECT_EQ(metric_value(page, "inferd:http_requests_total", "handler=\"/v1/embeddings\""), 1.0);
  EXPECT_EQ(metric_value(page, "vllm:prompt_tokens_total"), 11 + 4);
  sink->flush();
  const std::string text = log.str();
  EXPECT_NE(text.find("route=/v1/embeddings status=200 inputs=2 prompt_tokens=15 dimensions=16"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("user=u7 input0=\"SECRET one\" input1=\"two\""), std::string::npos) << text;
}

}  // namespace
}  // namespace inferd::server::testing
