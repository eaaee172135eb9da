// The Responses API (/v1/responses, issue 30): the store's bounds and LRU eviction, and requests
// through the server against the fake generator: input shapes converted to the chat prompt,
// instructions, tools and function_call / function_call_output turns, text.format, reasoning
// items, previous_response_id, GET and DELETE, the streaming events, and every unsupported field
// a 400 naming it.
#include <gtest/gtest.h>

#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/responses_store.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

StoredResponse entry(size_t payload) {
  StoredResponse s;
  s.response = {{"output", std::string(payload, 'x')}};
  return s;
}

TEST(ResponsesStoreTest, EvictsLeastRecentlyUsedByCount) {
  ResponsesStore store({3, size_t(1) << 20});
  for (const char* id : {"a", "b", "c"}) EXPECT_TRUE(store.put(id, entry(10)));
  ASSERT_TRUE(store.get("a"));  // a is now the most recently used: b goes first
  EXPECT_TRUE(store.put("d", entry(10)));
  EXPECT_EQ(store.size(), 3u);
  EXPECT_FALSE(store.get("b"));
  EXPECT_TRUE(store.get("a") && store.get("c") && store.get("d"));
}

TEST(ResponsesStoreTest, EvictsByBytesAndRefusesAnEntryLargerThanTheBound) {
  ResponsesStore store({100, 1000});
  EXPECT_TRUE(store.put("a", entry(400)));
  EXPECT_TRUE(store.put("b", entry(400)));
  EXPECT_LE(store.bytes(), 1000u);
  EXPECT_TRUE(store.put("c", entry(400)));  // a is evicted
  EXPECT_FALSE(store.get("a"));
  EXPECT_TRUE(store.get("b") && store.get("c"));
  EXPECT_LE(store.bytes(), 1000u);
  EXPECT_FALSE(store.put("big", entry(2000)));
  EXPECT_FALSE(store.get("big"));
  EXPECT_EQ(store.size(), 2u);
}

TEST(ResponsesStoreTest, ReplaceEraseAndOff) {
  ResponsesStore store({10, 10000});
  store.put("a", entry(100));
  const size_t one = store.bytes();
  store.put("a", entry(100));
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.bytes(), one);
  EXPECT_TRUE(store.erase("a"));
  EXPECT_FALSE(store.erase("a"));
  EXPECT_EQ(store.bytes(), 0u);
  ResponsesStore off({0, 10000});
  EXPECT_FALSE(off.put("a", entry(1)));
  EXPECT_FALSE(off.get("a"));
}

const json kWeather = {{"type", "function"},
                       {"name", "get_weather"},
                       {"description", "Weather of a city"},
                       {"parameters",
                        {{"type", "object"},
                         {"properties", {{"city", {{"type", "string"}}}}},
                         {"required", {"city"}}}}};

class ResponsesTest : public ::testing::Test {
 protected:
  void start(const std::string& reply = "Hello there.", ChatParsing parsing = {},
             ResponsesStoreConfig store = {}, double timeout_s = 0) {
    FakeConfig fc;
    fc.reply = reply;
    fc.eos_after = int32_t(reply.size());
    fc.max_model_len = 4096;
    if (timeout_s > 0) fc.step = std::chrono::milliseconds(20);
    fc.chat_template = chat_template_;
    gen_ = std::make_shared<FakeGenerator>(fc);
    ServerConfig cfg;
    cfg.request_timeout_s = timeout_s;
    cfg.chat_parsing = parsing;
    cfg.responses_store = store;
    cfg.served_model_names = {"tiny"};
    port_ = start_test_server(cfg, gen_, server_);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (gen_) gen_->shutdown();
  }
  json body(json patch = json::object()) {
    json b = {{"model", "tiny"}, {"input", "hi"}};
    for (auto it = patch.begin(); it != patch.end(); ++it) b[it.key()] = it.value();
    return b;
  }
  json create(const json& b) {
    auto r = post(port_, "/v1/responses", b);
    EXPECT_EQ(r.status, 200) << b.dump() << "\n" << r.body;
    return json::parse(r.body, nullptr, false);
  }
  std::string expect_400(const json& b, const std::string& param) {
    auto r = post(port_, "/v1/responses", b);
    EXPECT_EQ(r.status, 400) << b.dump() << "\n" << r.body;
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("error")) {
      ADD_FAILURE() << r.body;
      return "";
    }
    EXPECT_EQ(j["error"]["param"], param) << b.dump() << "\n" << r.body;
    return j["error"]["message"].get<std::string>();
  }
  std::string last_prompt() { return gen_->decode(gen_->last_request().prompt_token_ids, true); }

  std::string chat_template_;  // set before start(): a Jinja template instead of the fake's own
  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(ResponsesTest, PlainTextResponse) {
  start();
  const json j = create(body({{"instructions", "Be brief."}, {"max_output_tokens", 64}}));
  EXPECT_EQ(j["object"], "response");
  EXPECT_EQ(j["id"].get<std::string>().rfind("resp_", 0), 0u);
  EXPECT_EQ(j["status"], "completed");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["instructions"], "Be brief.");
  EXPECT_EQ(j["max_output_tokens"], 64);
  EXPECT_TRUE(j["incomplete_details"].is_null());
  ASSERT_EQ(j["output"].size(), 1u);
  const json msg = j["output"][0];
  EXPECT_EQ(msg["type"], "message");
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["status"], "completed");
  EXPECT_EQ(msg["id"].get<std::string>().rfind("msg_", 0), 0u);
  EXPECT_EQ(msg["content"][0]["type"], "output_text");
  EXPECT_EQ(msg["content"][0]["text"], "Hello there.");
  const json u = j["usage"];
  EXPECT_EQ(u["output_tokens"], 13);  // with the EOS token
  EXPECT_GT(u["input_tokens"].get<int>(), 0);
  EXPECT_EQ(u["total_tokens"], u["input_tokens"].get<int>() + 13);
  EXPECT_EQ(u["input_tokens_details"]["cached_tokens"].is_number(), true);
  EXPECT_EQ(u["output_tokens_details"]["reasoning_tokens"], 0);
  EXPECT_EQ(last_prompt(), "<|system|>Be brief.\n<|user|>hi\n<|assistant|>");
  EXPECT_EQ(gen_->last_request().params.max_tokens, 64);
}

TEST_F(ResponsesTest, MessageItemsBecomeTheChatPrompt) {
  start();
  const json input = json::array({{{"role", "developer"}, {"content", "Rules."}},
                                  {{"type", "message"},
                                   {"role", "user"},
                                   {"content", {{{"type", "input_text"}, {"text", "A"}}}}},
                                  {{"type", "message"},
                                   {"role", "assistant"},
                                   {"content", {{{"type", "output_text"}, {"text", "B"}}}}},
                                  {{"role", "user"}, {"content", "C"}}});
  create(body({{"input", input}, {"temperature", 0.5}, {"top_p", 0.9}}));
  EXPECT_EQ(last_prompt(), "<|system|>Rules.\n<|user|>A\n<|assistant|>B\n<|user|>C\n<|assistant|>");
  EXPECT_FLOAT_EQ(gen_->last_request().params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(gen_->last_request().params.top_p, 0.9f);
}

TEST_F(ResponsesTest, LengthIsIncomplete) {
  start();
  const json j = create(body({{"max_output_tokens", 5}}));
  EXPECT_EQ(j["status"], "incomplete");
  EXPECT_EQ(j["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_EQ(j["output"][0]["status"], "incomplete");
  EXPECT_EQ(j["output"][0]["content"][0]["text"], "Hello");
}

TEST_F(ResponsesTest, StoreRetrieveDeleteAndPreviousResponse) {
  start();
  const json first = create(body({{"input", "one"}, {"instructions", "Sys."}}));
  const std::string id = first["id"];
  auto g = get(port_, "/v1/responses/" + id);
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_EQ(g.json()["output"], first["output"]);
  // The next turn carries the first one's input and output, not its instructions.
  const json second = create(body({{"input", "two"}, {"previous_response_id", id}}));
  EXPECT_EQ(second["previous_response_id"], id);
  EXPECT_EQ(last_prompt(), "<|user|>one\n<|assistant|>Hello there.\n<|user|>two\n<|assistant|>");
  // A third continues the chain.
  create(body({{"input", "three"}, {"previous_response_id", second["id"]}}));
  EXPECT_EQ(last_prompt(),
            "<|user|>one\n<|assistant|>Hello there.\n<|user|>two\n<|assistant|>Hello "
            "there.\n<|user|>three\n<|assistant|>");
  // store: false keeps nothing.
  const json unstored = create(body({{"store", false}}));
  EXPECT_EQ(unstored["store"], false);
  EXPECT_EQ(get(port_, "/v1/responses/" + unstored["id"].get<std::string>()).status, 404);

  auto d = http_call(port_, http::verb::delete_, "/v1/responses/" + id);
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.json(), json({{"id", id}, {"object", "response.deleted"}, {"deleted", true}}));
  auto g2 = get(port_, "/v1/responses/" + id);
  EXPECT_EQ(g2.status, 404);
  EXPECT_EQ(g2.json()["error"]["message"], "Response with id '" + id + "' not found.");
  EXPECT_EQ(http_call(port_, http::verb::delete_, "/v1/responses/" + id).status, 404);
  auto r = post(port_, "/v1/responses", body({{"previous_response_id", id}}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["code"], "previous_response_not_found");
  EXPECT_EQ(r.json()["error"]["param"], "previous_response_id");
  EXPECT_EQ(http_call(port_, http::verb::put, "/v1/responses/" + id).status, 405);
  EXPECT_EQ(get(port_, "/v1/responses").status, 405);
}

TEST_F(ResponsesTest, EvictedPreviousResponseIsNotFound) {
  start("Hello there.", {}, {2, size_t(1) << 20});
  const std::string a = create(body())["id"];
  create(body());
  create(body());
  EXPECT_EQ(get(port_, "/v1/responses/" + a).status, 404);
  expect_400(body({{"previous_response_id", a}}), "previous_response_id");
}

TEST_F(ResponsesTest, FunctionCallsAndTheirOutputs) {
  start(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}\n</tool_call>",
      {true, ToolCallFormat::kHermes, std::nullopt});
  const json j = create(body({{"tools", {kWeather}}, {"input", "Weather in Lima?"}}));
  ASSERT_EQ(j["output"].size(), 1u) << j.dump();
  const json call = j["output"][0];
  EXPECT_EQ(call["type"], "function_call");
  EXPECT_EQ(call["name"], "get_weather");
  EXPECT_EQ(json::parse(call["arguments"].get<std::string>()), json({{"city", "Lima"}}));
  EXPECT_EQ(call["status"], "completed");
  EXPECT_EQ(call["id"].get<std::string>().rfind("fc_", 0), 0u);
  EXPECT_FALSE(call["call_id"].get<std::string>().empty());
  EXPECT_EQ(j["tools"][0]["name"], "get_weather");
  EXPECT_EQ(j["tool_choice"], "auto");
  const std::string prompt = last_prompt();
  EXPECT_NE(prompt.find("<|tools|>1"), std::string::npos) << prompt;

  // The client runs the tool and sends its output with previous_response_id.
  create(body({{"tools", {kWeather}},
               {"previous_response_id", j["id"]},
               {"input",
                {{{"type", "function_call_output"},
                  {"call_id", call["call_id"]},
                  {"output", "{\"temp\": 21}"}}}}}));
  const std::string p2 = last_prompt();
  EXPECT_NE(p2.find("<|assistant|>\n<|tool|>{\"temp\": 21}\n"), std::string::npos) << p2;

  // The same turn given without the store, as items.
  create(body({{"tools", {kWeather}},
               {"store", false},
               {"input",
                {{{"role", "user"}, {"content", "Weather in Lima?"}},
                 {{"type", "function_call"},
                  {"call_id", "call_1"},
                  {"name", "get_weather"},
                  {"arguments", "{\"city\":\"Lima\"}"}},
                 {{"type", "function_call_output"}, {"call_id", "call_1"}, {"output", "21C"}}}}}));
  EXPECT_NE(last_prompt().find("<|user|>Weather in Lima?\n<|assistant|>\n<|tool|>21C\n"),
            std::string::npos)
      << last_prompt();
}

TEST_F(ResponsesTest, RequiredAndNamedToolChoiceAreEnforced) {
  start("{\"city\": \"Quito\"}", {false, std::nullopt, std::nullopt});
  const json j = create(body(
      {{"tools", {kWeather}}, {"tool_choice", {{"type", "function"}, {"name", "get_weather"}}}}));
  ASSERT_TRUE(gen_->last_request().params.structured_outputs);
  ASSERT_EQ(j["output"].size(), 1u) << j.dump();
  EXPECT_EQ(j["output"][0]["type"], "function_call");
  EXPECT_EQ(j["output"][0]["arguments"], "{\"city\": \"Quito\"}");
  EXPECT_EQ(j["tool_choice"]["name"], "get_weather");
  expect_400(
      body({{"tools", {kWeather}}, {"tool_choice", {{"type", "function"}, {"name", "nope"}}}}),
      "tool_choice.name");
  // auto needs the server's tool-call parser.
  expect_400(body({{"tools", {kWeather}}}), "tool_choice");
}

TEST_F(ResponsesTest, TextFormatJsonSchemaKeepsTheClientsKeyOrder) {
  start("{}");
  const std::string raw =
      R"({"model": "tiny", "input": "hi", "text": {"format": {"type": "json_schema", "name": "pair",
          "strict": true, "schema": {"type": "object", "properties": {"b": {"type": "integer"},
          "a": {"type": "string"}}}}}})";
  auto r = http_call(port_, http::verb::post, "/v1/responses", raw);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto so = gen_->last_request().params.structured_outputs;
  ASSERT_TRUE(so && so->json);
  EXPECT_LT(so->json->find("\"b\""), so->json->find("\"a\"")) << *so->json;
  EXPECT_EQ(r.json()["text"]["format"]["name"], "pair");
  create(body({{"text", {{"format", {{"type", "json_object"}}}}}}));
  ASSERT_TRUE(gen_->last_request().params.structured_outputs);
  EXPECT_TRUE(gen_->last_request().params.structured_outputs->json_object);
  create(body({{"text", {{"format", {{"type", "text"}}}}}}));
  EXPECT_FALSE(gen_->last_request().params.structured_outputs);
  expect_400(body({{"text", {{"format", {{"type", "json_schema"}, {"schema", json::object()}}}}}}),
             "text.format.name");
  expect_400(body({{"text", {{"format", {{"type", "xml"}}}}}}), "text.format.type");
}

TEST_F(ResponsesTest, ReasoningItems) {
  start("<think>Two and two.</think>\n\nIt is 4.", {false, std::nullopt, ReasoningFormat::kQwen3});
  const json j = create(body({{"reasoning", {{"effort", "high"}}}}));
  ASSERT_EQ(j["output"].size(), 2u) << j.dump();
  EXPECT_EQ(j["output"][0]["type"], "reasoning");
  EXPECT_EQ(j["output"][0]["content"][0]["type"], "reasoning_text");
  EXPECT_EQ(j["output"][0]["content"][0]["text"], "Two and two.");
  EXPECT_EQ(j["output"][0]["summary"], json::array());
  EXPECT_EQ(j["output"][1]["content"][0]["text"], "It is 4.");
  EXPECT_EQ(j["usage"]["output_tokens_details"]["reasoning_tokens"], 12);
  EXPECT_EQ(j["reasoning"]["effort"], "high");
  // The output items sent back as input (a stateless client): the reasoning is not replayed.
  json input = json::array({{{"role", "user"}, {"content", "hi"}}});
  for (const auto& o : j["output"]) input.push_back(o);
  input.push_back({{"role", "user"}, {"content", "more"}});
  create(body({{"input", input}, {"store", false}}));
  EXPECT_EQ(last_prompt(), "<|user|>hi\n<|assistant|>It is 4.\n<|user|>more\n<|assistant|>");
  // effort none turns thinking off in the template.
  create(body({{"reasoning", {{"effort", "none"}}}}));
  expect_400(body({{"reasoning", {{"effort", "huge"}}}}), "reasoning.effort");
  expect_400(body({{"reasoning", {{"summary", "detailed"}}}}), "reasoning.summary");
}

TEST_F(ResponsesTest, ReasoningEffortReachesTheTemplate) {
  chat_template_ =
      "{% for m in messages %}{{ m.content }}{% endfor %}|thinking={{ enable_thinking }}"
      "|effort={{ reasoning_effort }}|";
  start("ok", {false, std::nullopt, ReasoningFormat::kQwen3});
  create(body({{"reasoning", {{"effort", "low"}}}}));
  EXPECT_EQ(last_prompt(), "hi|thinking=True|effort=low|");
  create(body({{"reasoning", {{"effort", "none"}}}}));
  EXPECT_EQ(last_prompt(), "hi|thinking=False|effort=|");
  create(body());
  EXPECT_EQ(last_prompt(), "hi|thinking=|effort=|");
}

TEST_F(ResponsesTest, ReasoningEffortNeedsAReasoningParser) {
  start();
  expect_400(body({{"reasoning", {{"effort", "low"}}}}), "reasoning.effort");
  create(body({{"reasoning", {{"effort", nullptr}}}}));
}

TEST_F(ResponsesTest, UnknownAndUnsupportedFieldsAre400s) {
  start();
  expect_400(body({{"frobnicate", 1}}), "frobnicate");
  expect_400(body({{"background", true}}), "background");
  expect_400(body({{"tools", {{{"type", "web_search"}}}}}), "tools[0].type");
  expect_400(body({{"include", {"reasoning.encrypted_content"}}}), "include[0]");
  expect_400(body({{"truncation", "auto"}}), "truncation");
  expect_400(body({{"conversation", "conv_1"}}), "conversation");
  expect_400(body({{"top_logprobs", 2}}), "top_logprobs");
  expect_400(body({{"prompt_cache_retention", "24h"}}), "prompt_cache_retention");
  expect_400(
      body({{"input",
             {{{"role", "user"}, {"content", {{{"type", "input_image"}, {"image_url", "x"}}}}}}}}),
      "input[0].content[0].type");
  expect_400(body({{"input", {{{"type", "item_reference"}, {"id", "x"}}}}}), "input[0].type");
  expect_400(body({{"input", 3}}), "input");
  expect_400(body({{"input", {{{"role", "tool"}, {"content", "x"}}}}}), "input[0].role");
  expect_400(body({{"metadata", {{"k", 1}}}}), "metadata.k");
  expect_400(body({{"max_output_tokens", "many"}}), "max_output_tokens");
  expect_400(body({{"max_output_tokens", 100000}}), "max_output_tokens");
  expect_400(body({{"temperature", -1}}), "temperature");
  expect_400(body({{"stream_options", {{"include_obfuscation", false}}}}), "stream_options");
  expect_400(body({{"tools", {{{"type", "function"}, {"name", "f"}, {"parameters", 3}}}}}),
             "tools[0].parameters");
  auto r = post(port_, "/v1/responses", body({{"model", "other"}}));
  EXPECT_EQ(r.status, 404);
  // Accepted without effect on the output: they ask for nothing this server would do otherwise.
  const json j = create(body({{"metadata", {{"k", "v"}}},
                              {"user", "u1"},
                              {"service_tier", "auto"},
                              {"prompt_cache_key", "k"},
                              {"safety_identifier", "s"},
                              {"include", json::array()},
                              {"truncation", "disabled"},
                              {"conversation", nullptr},
                              {"prompt_cache_retention", "in-memory"},
                              {"background", false}}));
  EXPECT_EQ(j["metadata"], json({{"k", "v"}}));
  EXPECT_EQ(j["user"], "u1");
  EXPECT_EQ(gen_->num_submitted(), 1);
}

// The events of a stream, as (type, data) in order.
std::vector<json> stream_events(uint16_t port, const json& b) {
  auto r = post(port, "/v1/responses", b);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type").rfind("text/event-stream", 0), 0u);
  std::vector<json> out;
  size_t pos = 0;
  while (pos < r.body.size()) {
    size_t end = r.body.find("\n\n", pos);
    if (end == std::string::npos) end = r.body.size();
    const std::string ev = r.body.substr(pos, end - pos);
    pos = end + 2;
    const size_t nl = ev.find('\n');
    EXPECT_EQ(ev.rfind("event: ", 0), 0u) << ev;
    json d = json::parse(ev.substr(nl + 7));
    EXPECT_EQ(ev.substr(7, nl - 7), d["type"].get<std::string>());
    out.push_back(std::move(d));
  }
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i]["sequence_number"], i);
  return out;
}

std::vector<std::string> types_of(const std::vector<json>& evs) {
  std::vector<std::string> t;
  for (const auto& e : evs) t.push_back(e["type"]);
  return t;
}

TEST_F(ResponsesTest, StreamedTextEvents) {
  start("Hi there");
  const auto evs = stream_events(port_, body({{"stream", true}}));
  const auto types = types_of(evs);
  ASSERT_GE(types.size(), 9u);
  EXPECT_EQ(types[0], "response.created");
  EXPECT_EQ(evs[0]["response"]["status"], "in_progress");
  EXPECT_EQ(types[1], "response.in_progress");
  EXPECT_EQ(types[2], "response.output_item.added");
  EXPECT_EQ(types[3], "response.content_part.added");
  std::string text;
  for (const auto& e : evs)
    if (e["type"] == "response.output_text.delta") {
      text += e["delta"].get<std::string>();
      EXPECT_EQ(e["logprobs"], json::array());
    }
  EXPECT_EQ(text, "Hi there");
  const size_t n = types.size();
  EXPECT_EQ(types[n - 4], "response.output_text.done");
  EXPECT_EQ(evs[n - 4]["text"], "Hi there");
  EXPECT_EQ(types[n - 3], "response.content_part.done");
  EXPECT_EQ(types[n - 2], "response.output_item.done");
  EXPECT_EQ(types[n - 1], "response.completed");
  const json resp = evs[n - 1]["response"];
  EXPECT_EQ(resp["status"], "completed");
  EXPECT_EQ(resp["output"][0]["content"][0]["text"], "Hi there");
  EXPECT_EQ(resp["usage"]["output_tokens"], 9);
  // Stored as streamed.
  auto g = get(port_, "/v1/responses/" + resp["id"].get<std::string>());
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(g.json()["output"], resp["output"]);
}

TEST_F(ResponsesTest, StreamedReasoningAndCallEvents) {
  start(
      "<think>Hmm.</think>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Oslo\"}}\n</tool_call>",
      {true, ToolCallFormat::kHermes, ReasoningFormat::kQwen3});
  const auto evs = stream_events(port_, body({{"stream", true}, {"tools", {kWeather}}}));
  std::string reasoning, args;
  for (const auto& e : evs) {
    if (e["type"] == "response.reasoning_text.delta") reasoning += e["delta"].get<std::string>();
    if (e["type"] == "response.function_call_arguments.delta") {
      args += e["delta"].get<std::string>();
      EXPECT_EQ(e["output_index"], 1);
    }
  }
  EXPECT_EQ(reasoning, "Hmm.");
  EXPECT_EQ(json::parse(args), json({{"city", "Oslo"}}));
  const json resp = evs.back()["response"];
  ASSERT_EQ(resp["output"].size(), 2u) << resp.dump();
  EXPECT_EQ(resp["output"][0]["type"], "reasoning");
  EXPECT_EQ(resp["output"][1]["type"], "function_call");
  EXPECT_EQ(resp["output"][1]["arguments"], args);
  bool done = false;
  for (const auto& e : evs)
    if (e["type"] == "response.function_call_arguments.done") {
      done = true;
      EXPECT_EQ(e["name"], "get_weather");
      EXPECT_EQ(e["arguments"], args);
    }
  EXPECT_TRUE(done);
}

TEST_F(ResponsesTest, StreamedLengthIsIncomplete) {
  start();
  const auto evs = stream_events(port_, body({{"stream", true}, {"max_output_tokens", 3}}));
  EXPECT_EQ(evs.back()["type"], "response.incomplete");
  EXPECT_EQ(evs.back()["response"]["incomplete_details"]["reason"], "max_output_tokens");
}

TEST_F(ResponsesTest, AFailureAfterTheStreamBeganIsResponseFailed) {
  start(std::string(200, 'x'), {}, {}, 0.15);
  const auto evs = stream_events(port_, body({{"stream", true}, {"max_output_tokens", 150}}));
  ASSERT_GE(evs.size(), 3u);
  const json err = evs[evs.size() - 2];
  EXPECT_EQ(err["type"], "error");
  EXPECT_EQ(err["code"], "request_timeout");
  const json failed = evs.back();
  EXPECT_EQ(failed["type"], "response.failed");
  EXPECT_EQ(failed["response"]["status"], "failed");
  EXPECT_EQ(failed["response"]["error"]["code"], "request_timeout");
  EXPECT_EQ(failed["response"]["output"][0]["status"], "incomplete");
  // Not streamed: the error itself, with its status; nothing stored.
  auto r = post(port_, "/v1/responses", body({{"max_output_tokens", 150}}));
  EXPECT_EQ(r.status, 408) << r.body;
  EXPECT_EQ(r.json()["error"]["code"], "request_timeout");
  EXPECT_EQ(server_->responses_store().size(), 0u);
}

}  // namespace
}  // namespace inferd::server::testing
