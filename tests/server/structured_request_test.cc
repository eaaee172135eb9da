// Structured outputs, tools and reasoning through the server (issue 15), against the fake
// generator: every accepted request shape fills SamplingParams::structured_outputs, every bad one
// is a 400 naming the field; tool_choice's rules; tool calls and reasoning in plain and streamed
// responses; where a constraint starts for reasoning models.
#include <gtest/gtest.h>

#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/protocol.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;

const json kWeatherTool = {{"type", "function"},
                           {"function",
                            {{"name", "get_weather"},
                             {"description", "Weather of a city"},
                             {"parameters",
                              {{"type", "object"},
                               {"properties", {{"city", {{"type", "string"}}}}},
                               {"required", {"city"}}}}}}};

class StructuredTest : public ::testing::Test {
 protected:
  void start(ChatParsing parsing = {}, FakeConfig fc = {}) {
    ServerConfig cfg;
    cfg.chat_parsing = parsing;
    gen_ = std::make_shared<FakeGenerator>(fc);
    cfg.served_model_names = {"tiny"};
    port_ = start_test_server(cfg, gen_, server_);
  }
  // A server whose fake model answers `reply` and then stops (EOS).
  void start_replying(const std::string& reply, ChatParsing parsing = {}) {
    FakeConfig fc;
    fc.reply = reply;
    fc.eos_after = int32_t(reply.size());
    fc.max_model_len = 4096;
    start(parsing, fc);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (gen_) gen_->shutdown();
    server_.reset();
    gen_.reset();
  }
  json chat(json patch = json::object(), int max_tokens = 8) {
    json b = {{"model", "tiny"},
              {"messages", {{{"role", "user"}, {"content", "hi"}}}},
              {"max_tokens", max_tokens}};
    for (auto it = patch.begin(); it != patch.end(); ++it) b[it.key()] = it.value();
    return b;
  }
  // The constraint the engine got for a request that must succeed.
  std::optional<StructuredOutputs> constraint_of(const json& body, bool chat_route = true) {
    auto r = post(port_, chat_route ? "/v1/chat/completions" : "/v1/completions", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return gen_->last_request().params.structured_outputs;
  }
  // A request that must fail with 400 naming `param`; returns the message.
  std::string expect_400(const json& body, const std::string& param) {
    auto r = post(port_, "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 400) << body.dump() << "\n" << r.body;
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("error")) {
      ADD_FAILURE() << r.body;
      return "";
    }
    EXPECT_EQ(j["error"]["param"], param) << body.dump() << "\n" << r.body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    return j["error"]["message"].get<std::string>();
  }

  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(StructuredTest, EveryConstraintShapeReachesTheEngine) {
  start();
  auto so = constraint_of(chat({{"response_format", {{"type", "json_object"}}}}));
  ASSERT_TRUE(so);
  EXPECT_TRUE(so->json_object);
  EXPECT_FALSE(so->json || so->regex || so->choice || so->grammar);
  EXPECT_FALSE(so->start_after_token);

  EXPECT_FALSE(constraint_of(chat({{"response_format", {{"type", "text"}}}})));
  EXPECT_FALSE(constraint_of(chat()));

  // The schema keeps the client's key order ("b" before "a"): the raw body is read again.
  const std::string raw =
      R"({"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}],
          "response_format": {"type": "json_schema", "json_schema": {"name": "pair", "strict": true,
          "schema": {"type": "object", "properties": {"b": {"type": "integer"},
                     "a": {"type": "string"}}}}}})";
  auto r = http_call(port_, http::verb::post, "/v1/chat/completions", raw);
  ASSERT_EQ(r.status, 200) << r.body;
  so = gen_->last_request().params.structured_outputs;
  ASSERT_TRUE(so && so->json);
  EXPECT_LT(so->json->find("\"b\""), so->json->find("\"a\"")) << *so->json;
  EXPECT_EQ(json::parse(*so->json)["properties"]["a"]["type"], "string");

  // json_schema without a schema: any JSON object.
  so = constraint_of(
      chat({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}}}));
  ASSERT_TRUE(so);
  EXPECT_TRUE(so->json_object);

  // vLLM's structured_outputs object.
  so = constraint_of(chat({{"structured_outputs", {{"json", {{"type", "integer"}}}}}}));
  ASSERT_TRUE(so && so->json);
  EXPECT_EQ(json::parse(*so->json), json({{"type", "integer"}}));
  so = constraint_of(chat({{"structured_outputs", {{"json", "{\"type\": \"string\"}"}}}}));
  ASSERT_TRUE(so && so->json);
  EXPECT_EQ(*so->json, "{\"type\": \"string\"}");
  so = constraint_of(chat({{"structured_outputs", {{"regex", "[a-z]+"}}}}));
  ASSERT_TRUE(so && so->regex);
  EXPECT_EQ(*so->regex, "[a-z]+");
  so = constraint_of(chat({{"structured_outputs", {{"choice", {"yes", "no"}}}}}));
  ASSERT_TRUE(so && so->choice);
  EXPECT_EQ(*so->choice, (std::vector<std::string>{"yes", "no"}));
  so = constraint_of(chat({{"structured_outputs", {{"grammar", "root ::= \"a\""}}}}));
  ASSERT_TRUE(so && so->grammar);
  so = constraint_of(
      chat({{"structured_outputs", {{"json_object", true}, {"disable_fallback", true}}}}));
  ASSERT_TRUE(so);
  EXPECT_TRUE(so->json_object);
  // Unset keys (null) do not count as a second constraint.
  so = constraint_of(chat({{"structured_outputs", {{"regex", "a"}, {"json", nullptr}}}}));
  ASSERT_TRUE(so && so->regex);

  // The older guided_* fields, on chat and on completions, streamed or not.
  so = constraint_of(chat({{"guided_json", {{"type", "object"}}}}));
  ASSERT_TRUE(so && so->json);
  so = constraint_of(chat({{"guided_json", "{\"type\": \"object\"}"}}));
  ASSERT_TRUE(so && so->json);
  so = constraint_of(chat({{"guided_regex", "\\d+"}}));
  ASSERT_TRUE(so && so->regex);
  so = constraint_of(chat({{"guided_choice", {"a", "b", "c"}}}));
  ASSERT_TRUE(so && so->choice);
  EXPECT_EQ(so->choice->size(), 3u);
  so = constraint_of(chat({{"guided_grammar", "root ::= [0-9]+"}}));
  ASSERT_TRUE(so && so->grammar);
  json comp = {{"model", "tiny"}, {"prompt", "x"}, {"max_tokens", 3}, {"guided_regex", "ab"}};
  so = constraint_of(comp, false);
  ASSERT_TRUE(so && so->regex);
  comp = {{"model", "tiny"},
          {"prompt", "x"},
          {"max_tokens", 3},
          {"stream", true},
          {"response_format", {{"type", "json_object"}}}};
  so = constraint_of(comp, false);
  ASSERT_TRUE(so && so->json_object);
}

TEST_F(StructuredTest, BadConstraintsAre400sNamingTheField) {
  start();
  struct Case {
    json patch;
    const char* param;
  };
  const std::vector<Case> cases = {
      {{{"response_format", "json"}}, "response_format"},
      {{{"response_format", json::object()}}, "response_format.type"},
      {{{"response_format", {{"type", 5}}}}, "response_format.type"},
      {{{"response_format", {{"type", "xml"}}}}, "response_format.type"},
      {{{"response_format", {{"type", "json_schema"}}}}, "response_format.json_schema"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", "s"}}}},
       "response_format.json_schema"},
      {{{"response_format",
         {{"type", "json_schema"}, {"json_schema", {{"schema", json::object()}}}}}},
       "response_format.json_schema.name"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a b"}}}}}},
       "response_format.json_schema.name"},
      {{{"response_format",
         {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", "{}"}}}}}},
       "response_format.json_schema.schema"},
      {{{"response_format",
         {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"strict", "yes"}}}}}},
       "response_format.json_schema.strict"},
      {{{"structured_outputs", "regex"}}, "structured_outputs"},
      {{{"structured_outputs", json::object()}}, "structured_outputs"},
      {{{"structured_outputs", {{"json", 1}}}}, "structured_outputs.json"},
      {{{"structured_outputs", {{"json", "{not json"}}}}, "structured_outputs.json"},
      {{{"structured_outputs", {{"json", "[1, 2]"}}}}, "structured_outputs.json"},
      {{{"structured_outputs", {{"regex", 1}}}}, "structured_outputs.regex"},
      {{{"structured_outputs", {{"regex", ""}}}}, "structured_outputs.regex"},
      {{{"structured_outputs", {{"choice", "a"}}}}, "structured_outputs.choice"},
      {{{"structured_outputs", {{"choice", json::array()}}}}, "structured_outputs.choice"},
      {{{"structured_outputs", {{"choice", {"a", 1}}}}}, "structured_outputs.choice[1]"},
      {{{"structured_outputs", {{"grammar", 3}}}}, "structured_outputs.grammar"},
      {{{"structured_outputs", {{"json_object", "yes"}}}}, "structured_outputs.json_object"},
      {{{"structured_outputs", {{"whitespace_pattern", " "}}}},
       "structured_outputs.whitespace_pattern"},
      {{{"guided_json", 5}}, "guided_json"},
      {{{"guided_json", "[1]"}}, "guided_json"},
      {{{"guided_regex", 5}}, "guided_regex"},
      {{{"guided_choice", "a"}}, "guided_choice"},
      {{{"guided_grammar", json::array()}}, "guided_grammar"},
  };
  for (const auto& c : cases) expect_400(chat(c.patch), c.param);

  // Two constraints at once: 400 naming both.
  std::string m = expect_400(chat({{"structured_outputs", {{"regex", "a"}, {"choice", {"b"}}}}}),
                             "structured_outputs.regex");
  EXPECT_NE(m.find("structured_outputs.choice"), std::string::npos) << m;
  m = expect_400(chat({{"response_format", {{"type", "json_object"}}}, {"guided_regex", "a"}}),
                 "guided_regex");
  EXPECT_NE(m.find("response_format"), std::string::npos) << m;
  m = expect_400(chat({{"guided_json", json::object()}, {"guided_choice", {"a"}}}),
                 "guided_choice");
  EXPECT_NE(m.find("guided_json"), std::string::npos) << m;
  expect_400(chat({{"structured_outputs", {{"json_object", true}}}, {"guided_grammar", "r"}}),
             "guided_grammar");
  EXPECT_EQ(gen_->num_submitted(), 0);
}

TEST_F(StructuredTest, BadToolsAndToolChoiceAre400s) {
  start();
  struct Case {
    json patch;
    const char* param;
  };
  json bad_schema_tool = kWeatherTool;
  bad_schema_tool["function"]["parameters"] = {{"type", "object"}, {"not", {{"type", "null"}}}};
  const std::vector<Case> cases = {
      {{{"tools", {{{"type", "retrieval"}}}}}, "tools[0].type"},
      {{{"tools", {{{"type", "function"}, {"function", "f"}}}}}, "tools[0].function"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", 5}}}}}}},
       "tools[0].function.name"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", "get weather"}}}}}}},
       "tools[0].function.name"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", "x"}}}}}}},
       "tools[0].function.parameters"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"strict", 1}}}}}}},
       "tools[0].function.strict"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"description", 1}}}}}}},
       "tools[0].function.description"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", 5}}, "tool_choice"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", "sometimes"}}, "tool_choice"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", {{"type", "function"}}}},
       "tool_choice.function"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", {{"type", "code"}}}}, "tool_choice.type"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", {{"function", json::object()}}}},
       "tool_choice.function.name"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", {{"function", {{"name", "nope"}}}}}},
       "tool_choice.function.name"},
      {{{"tool_choice", "required"}}, "tool_choice"},
      {{{"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}},
       "tool_choice"},
      {{{"tools", {kWeatherTool}},
        {"tool_choice", "required"},
        {"response_format", {{"type", "json_object"}}}},
       "tool_choice"},
      {{{"tools", {bad_schema_tool}}, {"tool_choice", "required"}}, "tools[0].function.parameters"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", "none"}, {"parallel_tool_calls", "no"}},
       "parallel_tool_calls"},
      {{{"messages",
         {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"tool_calls", "x"}}}}},
       "messages[1].tool_calls"},
      {{{"messages",
         {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"tool_calls", {5}}}}}},
       "messages[1].tool_calls[0]"},
      {{{"messages",
         {{{"role", "user"}, {"content", "hi"}},
          {{"role", "assistant"}, {"tool_calls", {json::object()}}}}}},
       "messages[1].tool_calls[0].function"},
      {{{"messages",
         {{{"role", "user"}, {"content", "hi"}},
          {{"role", "assistant"},
           {"tool_calls", {{{"type", "function"}, {"function", {{"arguments", "{}"}}}}}}}}}},
       "messages[1].tool_calls[0].function.name"},
      {{{"messages",
         {{{"role", "user"}, {"content", "hi"}},
          {{"role", "assistant"},
           {"tool_calls", {{{"function", {{"name", "f"}, {"arguments", 5}}}}}}}}}},
       "messages[1].tool_calls[0].function.arguments"},
  };
  for (const auto& c : cases) expect_400(chat(c.patch), c.param);
  // "auto" (said, or the default with tools) needs the server's flags, and says which.
  for (const json& patch : {json{{"tools", {kWeatherTool}}, {"tool_choice", "auto"}},
                            json{{"tools", {kWeatherTool}}}}) {
    const std::string m = expect_400(chat(patch), "tool_choice");
    EXPECT_NE(m.find("--enable-auto-tool-choice"), std::string::npos) << m;
    EXPECT_NE(m.find("--tool-call-parser"), std::string::npos) << m;
  }
  EXPECT_EQ(gen_->num_submitted(), 0);
}

TEST_F(StructuredTest, ToolChoiceNoneHidesToolsAndReturnsText) {
  start_replying("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>",
                 {true, ToolCallFormat::kHermes, std::nullopt});
  auto r = post(port_, "/v1/chat/completions",
                chat({{"tools", {kWeatherTool}}, {"tool_choice", "none"}}, 200));
  ASSERT_EQ(r.status, 200) << r.body;
  const json msg = r.json()["choices"][0]["message"];
  EXPECT_EQ(msg["content"].get<std::string>().rfind("<tool_call>", 0), 0u);
  EXPECT_FALSE(msg.contains("tool_calls"));
  EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "stop");
  const auto req = gen_->last_request();
  EXPECT_FALSE(req.params.structured_outputs);
  const std::string prompt = gen_->decode(req.prompt_token_ids, true);
  EXPECT_EQ(prompt.find("<|tools|>"), std::string::npos) << prompt;
}

TEST_F(StructuredTest, AutoToolCallsPlainAndStreamed) {
  const std::string reply =
      "I will check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"Oslo\"}}\n</tool_call>";
  start_replying(reply, {true, ToolCallFormat::kHermes, std::nullopt});
  const json body = chat({{"tools", {kWeatherTool}}}, 400);
  auto r = post(port_, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json choice = r.json()["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"], "I will check.");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 2u);
  const json tc = choice["message"]["tool_calls"][0];
  EXPECT_EQ(tc["id"].get<std::string>().rfind("chatcmpl-tool-", 0), 0u);
  EXPECT_EQ(tc["type"], "function");
  EXPECT_EQ(tc["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(tc["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));
  EXPECT_EQ(
      json::parse(choice["message"]["tool_calls"][1]["function"]["arguments"].get<std::string>()),
      json({{"city", "Oslo"}}));
  // The tools reached the template; auto adds no grammar.
  EXPECT_NE(gen_->decode(gen_->last_request().prompt_token_ids, true).find("<|tools|>1"),
            std::string::npos);
  EXPECT_FALSE(gen_->last_request().params.structured_outputs);

  // Streamed: content deltas, then the calls' deltas (first: id, type, name, arguments ""),
  // finish_reason "tool_calls" on the last chunk; reassembled, the same as above.
  json sbody = body;
  sbody["stream"] = true;
  r = post(port_, "/v1/chat/completions", sbody);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto ev = sse_events(r.body);
  ASSERT_EQ(ev.back(), "[DONE]");
  std::string content;
  std::vector<json> calls;
  std::string finish;
  for (size_t i = 1; i + 1 < ev.size(); ++i) {
    const json c = json::parse(ev[i])["choices"][0];
    EXPECT_TRUE(finish.empty()) << "nothing after the finish_reason";
    const json& d = c["delta"];
    if (d.contains("content")) {
      EXPECT_TRUE(calls.empty()) << "no content once a call started";
      content += d["content"].get<std::string>();
    }
    if (d.contains("tool_calls")) {
      for (const auto& t : d["tool_calls"]) {
        const size_t idx = t["index"];
        if (t.contains("id")) {
          ASSERT_EQ(idx, calls.size());
          EXPECT_EQ(t["type"], "function");
          EXPECT_EQ(t["function"]["arguments"], "");
          calls.push_back({{"id", t["id"]}, {"name", t["function"]["name"]}, {"arguments", ""}});
        } else {
          ASSERT_LT(idx, calls.size());
          EXPECT_FALSE(t["function"].contains("name"));
          calls[idx]["arguments"] = calls[idx]["arguments"].get<std::string>() +
                                    t["function"]["arguments"].get<std::string>();
        }
      }
    }
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(content, "I will check.");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["name"], "get_weather");
  EXPECT_EQ(calls[0]["arguments"], choice["message"]["tool_calls"][0]["function"]["arguments"]);
  EXPECT_EQ(calls[1]["arguments"], choice["message"]["tool_calls"][1]["function"]["arguments"]);
  EXPECT_NE(calls[0]["id"], calls[1]["id"]);

  // parallel_tool_calls false: only the first call.
  json one = body;
  one["parallel_tool_calls"] = false;
  r = post(port_, "/v1/chat/completions", one);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["choices"][0]["message"]["tool_calls"].size(), 1u);

  // Cut by max_tokens inside the first call's name: no call, the text is content, "length".
  r = post(port_, "/v1/chat/completions", chat({{"tools", {kWeatherTool}}}, 30));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(r.json()["choices"][0]["message"].contains("tool_calls"));
}

TEST_F(StructuredTest, AutoWithoutACallIsPlainContent) {
  start_replying("The weather is fine.", {true, ToolCallFormat::kHermes, std::nullopt});
  auto r = post(port_, "/v1/chat/completions", chat({{"tools", {kWeatherTool}}}, 100));
  ASSERT_EQ(r.status, 200) << r.body;
  const json c = r.json()["choices"][0];
  EXPECT_EQ(c["message"]["content"], "The weather is fine.");
  EXPECT_FALSE(c["message"].contains("tool_calls"));
  EXPECT_EQ(c["finish_reason"], "stop");
}

TEST_F(StructuredTest, RequiredAndNamedAreGrammarsInTheParsersFormat) {
  start_replying(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n"
      "</tool_call>",
      {false, ToolCallFormat::kHermes, std::nullopt});
  json time_tool = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
  auto r = post(port_, "/v1/chat/completions",
                chat({{"tools", {kWeatherTool, time_tool}}, {"tool_choice", "required"}}, 200));
  ASSERT_EQ(r.status, 200) << r.body;
  auto so = gen_->last_request().params.structured_outputs;
  ASSERT_TRUE(so && so->grammar);
  EXPECT_NE(so->grammar->find("<tool_call>"), std::string::npos) << *so->grammar;
  EXPECT_NE(so->grammar->find("get_time"), std::string::npos);
  EXPECT_NE(so->grammar->find(")*"), std::string::npos) << "required: one or more calls";
  json c = r.json()["choices"][0];
  EXPECT_EQ(c["finish_reason"], "tool_calls");
  EXPECT_TRUE(c["message"]["content"].is_null());
  ASSERT_EQ(c["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(c["message"]["tool_calls"][0]["function"]["arguments"], "{\"city\": \"Rome\"}");

  r = post(port_, "/v1/chat/completions",
           chat({{"tools", {kWeatherTool, time_tool}},
                 {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}},
                200));
  ASSERT_EQ(r.status, 200) << r.body;
  so = gen_->last_request().params.structured_outputs;
  ASSERT_TRUE(so && so->grammar);
  EXPECT_EQ(so->grammar->find("get_time"), std::string::npos) << "only the named function";
  EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(StructuredTest, WithoutAParserRequiredIsAnArrayAndNamedIsTheArguments) {
  start_replying("{\"city\": \"Lima\"}");
  auto r =
      post(port_, "/v1/chat/completions",
           chat({{"tools", {kWeatherTool}},
                 {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}},
                 {"stream", true}},
                100));
  ASSERT_EQ(r.status, 200) << r.body;
  auto so = gen_->last_request().params.structured_outputs;
  ASSERT_TRUE(so && so->grammar);
  EXPECT_EQ(so->grammar->find("get_weather"), std::string::npos) << "the bare arguments";
  std::string name, args, finish;
  for (const auto& e : sse_events(r.body)) {
    if (e == "[DONE]") break;
    const json c = json::parse(e)["choices"][0];
    if (c["delta"].contains("tool_calls")) {
      const json& t = c["delta"]["tool_calls"][0];
      if (t["function"].contains("name")) name = t["function"]["name"];
      args += t["function"]["arguments"].get<std::string>();
    }
    EXPECT_FALSE(c["delta"].contains("content") &&
                 !c["delta"]["content"].get<std::string>().empty());
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(name, "get_weather");
  EXPECT_EQ(args, "{\"city\": \"Lima\"}");
  EXPECT_EQ(finish, "tool_calls");

  TearDown();
  start_replying("[{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Quito\"}}]");
  r = post(port_, "/v1/chat/completions",
           chat({{"tools", {kWeatherTool}}, {"tool_choice", "required"}}, 100));
  ASSERT_EQ(r.status, 200) << r.body;
  so = gen_->last_request().params.structured_outputs;
  ASSERT_TRUE(so && so->grammar);
  EXPECT_NE(so->grammar->find("parameters"), std::string::npos) << *so->grammar;
  const json c = r.json()["choices"][0];
  EXPECT_EQ(c["finish_reason"], "tool_calls");
  ASSERT_EQ(c["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(c["message"]["tool_calls"][0]["function"]["arguments"], "{\"city\": \"Quito\"}");
}

TEST_F(StructuredTest, AssistantToolCallsAndToolResultsReachTheTemplate) {
  FakeConfig fc;
  fc.max_model_len = 4096;
  fc.chat_template =
      "{% for m in messages %}[{{ m.role }}]{% if m.tool_calls %}{% for c in m.tool_calls "
      "%}call:{{ c.function.name }}({{ c.function.arguments.city }}){% endfor %}{% endif %}{% "
      "if m.tool_call_id %}id:{{ m.tool_call_id }}{% endif %}{{ m.content or '' }}{% endfor %}";
  start({}, fc);
  json msgs = {
      {{"role", "user"}, {"content", "weather?"}},
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_1"},
          {"type", "function"},
          {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Oslo\"}"}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}};
  auto r = post(port_, "/v1/chat/completions",
                chat({{"messages", msgs}, {"tools", {kWeatherTool}}, {"tool_choice", "none"}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string prompt = gen_->decode(gen_->last_request().prompt_token_ids, true);
  EXPECT_EQ(prompt, "[user]weather?[assistant]call:get_weather(Oslo)[tool]id:call_1sunny");
}

TEST_F(StructuredTest, ReasoningContentPlainAndStreamed) {
  start_replying("<think>Two and two.</think>It is 4.",
                 {false, std::nullopt, ReasoningFormat::kQwen3});
  auto r = post(port_, "/v1/chat/completions", chat({}, 100));
  ASSERT_EQ(r.status, 200) << r.body;
  json msg = r.json()["choices"][0]["message"];
  EXPECT_EQ(msg["reasoning_content"], "Two and two.");
  EXPECT_EQ(msg["content"], "It is 4.");
  EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "stop");
  r = post(port_, "/v1/chat/completions", chat({{"stream", true}}, 100));
  ASSERT_EQ(r.status, 200) << r.body;
  std::string reasoning, content;
  for (const auto& e : sse_events(r.body)) {
    if (e == "[DONE]") break;
    const json d = json::parse(e)["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content")) content += d["content"].get<std::string>();
  }
  EXPECT_EQ(reasoning, "Two and two.");
  EXPECT_EQ(content, "It is 4.");
}

TEST_F(StructuredTest, ReasoningThenToolCall) {
  start_replying(
      "<think>Need weather.</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"Bern\"}}\n</tool_call>",
      {true, ToolCallFormat::kHermes, ReasoningFormat::kQwen3});
  auto r = post(port_, "/v1/chat/completions", chat({{"tools", {kWeatherTool}}}, 300));
  ASSERT_EQ(r.status, 200) << r.body;
  const json c = r.json()["choices"][0];
  EXPECT_EQ(c["message"]["reasoning_content"], "Need weather.");
  EXPECT_TRUE(c["message"]["content"].is_null());
  ASSERT_EQ(c["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(c["finish_reason"], "tool_calls");
}

// A generator whose tokenizer has a single </think> token (id 300), as reasoning models' do.
class ThinkTokenGenerator final : public Generator {
 public:
  std::vector<int32_t> encode(const std::string& text, bool special) const override {
    if (text == "</think>") return {300};
    return fake_.encode(text, special);
  }
  std::string decode(std::span<const int32_t> ids, bool skip) const override {
    return fake_.decode(ids, skip);
  }
  std::string token_text(int32_t id) const override { return fake_.token_text(id); }
  std::string apply_chat_template(const ChatTemplateArgs& args) const override {
    std::string s = fake_.apply_chat_template(args);
    if (args.kwargs.contains("enable_thinking") && !args.kwargs["enable_thinking"].get<bool>())
      s += "<think>\n\n</think>\n\n";
    return s;
  }
  int32_t vocab_size() const override { return 301; }
  int32_t max_model_len() const override { return 4096; }
  std::string submit(GenerateRequest, OutputCallback) override { return ""; }
  bool abort(const std::string&) override { return false; }
  EngineStats stats() const override { return {}; }
  void shutdown() override { fake_.shutdown(); }

 private:
  mutable FakeGenerator fake_;
};

TEST(StructuredReasoning, ConstraintStartsAfterTheReasoningUnlessThePromptClosedIt) {
  ThinkTokenGenerator gen;
  ValidationContext ctx;
  ctx.generator = &gen;
  ctx.model_names = {"tiny"};
  ctx.parsing.reasoning_parser = ReasoningFormat::kQwen3;
  json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
               {"response_format", {{"type", "json_object"}}}};
  CompletionRequest r = parse_completion_request(body, true, ctx);
  ASSERT_TRUE(r.params.structured_outputs);
  EXPECT_EQ(r.params.structured_outputs->start_after_token, 300);
  EXPECT_EQ(r.output.reasoning, ReasoningFormat::kQwen3);
  EXPECT_FALSE(r.output.starts_in_reasoning);
  // enable_thinking=false: the template closed the reasoning; the constraint applies at once.
  body["chat_template_kwargs"] = {{"enable_thinking", false}};
  r = parse_completion_request(body, true, ctx);
  ASSERT_TRUE(r.params.structured_outputs);
  EXPECT_FALSE(r.params.structured_outputs->start_after_token);
  // deepseek_r1: the output starts inside the reasoning.
  body.erase("chat_template_kwargs");
  ctx.parsing.reasoning_parser = ReasoningFormat::kDeepSeekR1;
  r = parse_completion_request(body, true, ctx);
  EXPECT_TRUE(r.output.starts_in_reasoning);
  EXPECT_EQ(r.params.structured_outputs->start_after_token, 300);
  // No reasoning parser: no start token.
  ctx.parsing.reasoning_parser.reset();
  r = parse_completion_request(body, true, ctx);
  EXPECT_FALSE(r.params.structured_outputs->start_after_token);
  EXPECT_FALSE(r.output.active());
  // Completions are not parsed for reasoning.
  ctx.parsing.reasoning_parser = ReasoningFormat::kQwen3;
  r = parse_completion_request({{"prompt", "x"}, {"guided_regex", "a"}}, false, ctx);
  EXPECT_FALSE(r.params.structured_outputs->start_after_token);
}

}  // namespace
}  // namespace inferd::server::testing
