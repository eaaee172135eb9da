// The Anthropic Messages API (issue 30): a body's conversion into the chat request (system and
// content blocks, tool_use / tool_result, tools, tool_choice, thinking, stop_sequences, metadata),
// every bad or unknown field a 400 naming it, Anthropic's error JSON, and the answer's content
// blocks, stop reasons, usage and stream events (MessagesOutput fed by the chat output parsers).
#include <gtest/gtest.h>

#include "server/chat_output.h"
#include "server/fake_generator.h"
#include "server/fake_server.h"
#include "server/messages_output.h"
#include "server/messages_request.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::server::testing {
namespace {

using nlohmann::json;

const json kWeather = {{"name", "get_weather"},
                       {"description", "Weather of a city"},
                       {"input_schema",
                        {{"type", "object"},
                         {"properties", {{"city", {{"type", "string"}}}}},
                         {"required", {"city"}}}}};

json body(json patch = json::object()) {
  json b = {
      {"model", "tiny"}, {"max_tokens", 8}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  for (auto it = patch.begin(); it != patch.end(); ++it) b[it.key()] = it.value();
  return b;
}

class MessagesRequestTest : public ::testing::Test {
 protected:
  MessagesRequestTest() {
    FakeConfig fc;
    fc.max_model_len = 4096;
    gen_ = std::make_shared<FakeGenerator>(fc);
    ctx_.generator = gen_.get();
    ctx_.model_names = {"tiny"};
  }
  ~MessagesRequestTest() override { gen_->shutdown(); }

  json chat(const json& b, bool count = false) {
    return json::parse(messages_to_chat_body(b, nullptr, ctx_, count).dump());
  }
  // A body that must be refused with 400 naming `param`; returns the message.
  std::string expect_400(const json& b, const std::string& param) {
    try {
      (void)parse_messages_request(b, ctx_);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400) << b.dump() << "\n" << e.what();
      EXPECT_EQ(e.param().value_or("(none)"), param) << b.dump() << "\n" << e.what();
      return e.what();
    }
    ADD_FAILURE() << "accepted: " << b.dump();
    return "";
  }

  std::shared_ptr<FakeGenerator> gen_;
  ValidationContext ctx_;
};

TEST_F(MessagesRequestTest, SystemAndContentBlocksBecomeChatMessages) {
  const json b = body(
      {{"system", json::array({{{"type", "text"}, {"text", "Be brief."}},
                               {{"type", "text"},
                                {"text", "Use tools."},
                                {"cache_control", {{"type", "ephemeral"}}}}})},
       {"messages",
        {{{"role", "user"},
          {"content", json::array({{{"type", "text"}, {"text", "Weather"}},
                                   {{"type", "text"}, {"text", "in Paris?"}}})}},
         {{"role", "assistant"},
          {"content", json::array({{{"type", "thinking"}, {"thinking", "hm"}, {"signature", "s"}},
                                   {{"type", "text"}, {"text", "Checking."}},
                                   {{"type", "tool_use"},
                                    {"id", "toolu_1"},
                                    {"name", "get_weather"},
                                    {"input", {{"city", "Paris"}}}}})}},
         {{"role", "user"},
          {"content",
           json::array({{{"type", "tool_result"},
                         {"tool_use_id", "toolu_1"},
                         {"content", json::array({{{"type", "text"}, {"text", "Sun"}}})}},
                        {{"type", "text"}, {"text", "Thanks"}}})}}}}});
  const json c = chat(b);
  const json want = json::array(
      {{{"role", "system"}, {"content", "Be brief.\nUse tools."}},
       {{"role", "user"}, {"content", "Weather\nin Paris?"}},
       {{"role", "assistant"},
        {"content", "Checking."},
        {"tool_calls",
         {{{"id", "toolu_1"},
           {"type", "function"},
           {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}}}}}}}}},
       {{"role", "tool"}, {"tool_call_id", "toolu_1"}, {"content", "Sun"}},
       {{"role", "user"}, {"content", "Thanks"}}});
  EXPECT_EQ(c["messages"], want) << c.dump(1);
  EXPECT_EQ(c["max_tokens"], 8);
  EXPECT_FALSE(c.contains("continue_final_message"));

  // A string system prompt; a tool_result with is_error and string content; a final assistant turn
  // is continued (prefill).
  const json c2 = chat(body({{"system", "S"},
                             {"messages",
                              {{{"role", "user"},
                                {"content", json::array({{{"type", "tool_result"},
                                                          {"tool_use_id", "t"},
                                                          {"content", "boom"},
                                                          {"is_error", true}}})}},
                               {{"role", "assistant"}, {"content", "The answer is"}}}}}));
  EXPECT_EQ(c2["messages"][0], json({{"role", "system"}, {"content", "S"}}));
  EXPECT_EQ(c2["messages"][1],
            json({{"role", "tool"}, {"tool_call_id", "t"}, {"content", "Error: boom"}}));
  EXPECT_EQ(c2["messages"].size(), 3u);  // no empty user message after the tool result
  EXPECT_EQ(c2["continue_final_message"], true);
}

// --reasoning-parser openai_gptoss: harmony's channel markers are special tokens, so a chat
// request keeps them in the output text for the parser (unless it sets skip_special_tokens), the
// output starts outside any reasoning, and no </think> marks where constraints begin.
TEST_F(MessagesRequestTest, GptOssHarmonyChatKeepsSpecialTokens) {
  ctx_.parsing.reasoning_parser = ReasoningFormat::kGptOss;
  const json msgs = json::array({{{"role", "user"}, {"content", "hi"}}});
  CompletionRequest r =
      parse_completion_request(json{{"model", "tiny"}, {"messages", msgs}}, true, ctx_);
  EXPECT_EQ(r.output.reasoning, ReasoningFormat::kGptOss);
  EXPECT_FALSE(r.output.starts_in_reasoning);
  EXPECT_FALSE(r.params.skip_special_tokens);
  r = parse_completion_request(
      json{{"model", "tiny"}, {"messages", msgs}, {"skip_special_tokens", true}}, true, ctx_);
  EXPECT_TRUE(r.params.skip_special_tokens);
  ctx_.parsing.reasoning_parser = ReasoningFormat::kQwen3;
  r = parse_completion_request(json{{"model", "tiny"}, {"messages", msgs}}, true, ctx_);
  EXPECT_TRUE(r.params.skip_special_tokens);
}

TEST_F(MessagesRequestTest, SamplingStopsToolsAndThinkingReachTheChatRequest) {
  ctx_.parsing = {true, ToolCallFormat::kHermes, ReasoningFormat::kQwen3};
  const json b = body({{"stop_sequences", {"END", "STOP"}},
                       {"temperature", 0.5},
                       {"top_p", 0.9},
                       {"top_k", 5},
                       {"stream", true},
                       {"metadata", {{"user_id", "u-1"}}},
                       {"tools", {kWeather}},
                       {"tool_choice", {{"type", "auto"}, {"disable_parallel_tool_use", true}}},
                       {"thinking", {{"type", "enabled"}, {"budget_tokens", 4}}}});
  const json c = chat(b);
  EXPECT_EQ(c["stop"], json({"END", "STOP"}));
  EXPECT_EQ(c["tools"][0]["function"]["parameters"], kWeather["input_schema"]);
  EXPECT_EQ(c["tools"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(c["tool_choice"], "auto");
  EXPECT_EQ(c["parallel_tool_calls"], false);
  EXPECT_EQ(c["chat_template_kwargs"]["enable_thinking"], true);
  EXPECT_EQ(c["user"], "u-1");

  const CompletionRequest r = parse_messages_request(b, ctx_);
  EXPECT_TRUE(r.chat);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.params.max_tokens, 8);
  EXPECT_EQ(r.params.stop, std::vector<std::string>({"END", "STOP"}));
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.top_k, 5);
  EXPECT_EQ(r.user, "u-1");
  EXPECT_EQ(r.output.tools, ToolCallFormat::kHermes);
  EXPECT_TRUE(r.output.single_call);
  EXPECT_EQ(r.output.reasoning, ReasoningFormat::kQwen3);
  EXPECT_FALSE(r.params.structured_outputs);
  const std::string prompt = gen_->decode(r.prompts[0], true);
  EXPECT_NE(prompt.find("<|tools|>1"), std::string::npos) << prompt;

  // any: every call grammar-enforced; tool: that one; none: the tools hidden.
  CompletionRequest any = parse_messages_request(
      body({{"tools", {kWeather}}, {"tool_choice", {{"type", "any"}}}}), ctx_);
  EXPECT_TRUE(any.params.structured_outputs && any.params.structured_outputs->grammar);
  EXPECT_EQ(any.constraint_param, "tools");
  CompletionRequest one = parse_messages_request(
      body({{"tools", {kWeather}}, {"tool_choice", {{"type", "tool"}, {"name", "get_weather"}}}}),
      ctx_);
  EXPECT_TRUE(one.params.structured_outputs);
  EXPECT_EQ(one.output.function_name, "get_weather");
  CompletionRequest none = parse_messages_request(
      body({{"tools", {kWeather}}, {"tool_choice", {{"type", "none"}}}}), ctx_);
  EXPECT_FALSE(none.output.tools);
  EXPECT_EQ(gen_->decode(none.prompts[0], true).find("<|tools|>"), std::string::npos);

  // Disabled thinking turns the template's thinking off, with or without a parser.
  ctx_.parsing = {};
  EXPECT_EQ(chat(body({{"thinking", {{"type", "disabled"}}}}))["chat_template_kwargs"],
            json({{"enable_thinking", false}}));
}

TEST_F(MessagesRequestTest, CountTokensCountsThePrompt) {
  json b = body({{"system", "abc"}});
  b.erase("max_tokens");
  const CompletionRequest r = parse_messages_request(body({{"system", "abc"}}), ctx_);
  EXPECT_EQ(count_message_tokens(b, ctx_), int64_t(r.prompts[0].size()));
  EXPECT_GT(count_message_tokens(b, ctx_), 3);
  // Only the fields count_tokens takes.
  try {
    (void)count_message_tokens(body(), ctx_);
    ADD_FAILURE() << "max_tokens accepted by count_tokens";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "max_tokens");
  }
}

TEST_F(MessagesRequestTest, EveryBadFieldIsA400NamingIt) {
  json no_max = body();
  no_max.erase("max_tokens");
  expect_400(no_max, "max_tokens");
  expect_400(body({{"max_tokens", 0}}), "max_tokens");
  expect_400(body({{"max_tokens", "8"}}), "max_tokens");
  EXPECT_NE(expect_400(body({{"frequency_penalty", 1}}), "frequency_penalty").find("Extra inputs"),
            std::string::npos);
  expect_400(body({{"service_tier", "auto"}}), "service_tier");
  expect_400(body({{"messages", json::array()}}), "messages");
  expect_400(body({{"messages", "hi"}}), "messages");
  expect_400(body({{"messages", {{{"role", "system"}, {"content", "x"}}}}}), "messages[0].role");
  expect_400(body({{"messages", {{{"role", "user"}}}}}), "messages[0].content");
  expect_400(body({{"messages", {{{"role", "user"}, {"content", 3}}}}}), "messages[0].content");
  expect_400(body({{"messages", {{{"role", "user"}, {"content", "x"}, {"name", "n"}}}}}),
             "messages[0].name");
  const std::string img = expect_400(
      body(
          {{"messages",
            {{{"role", "user"},
              {"content",
               json::array(
                   {{{"type", "text"}, {"text", "see"}},
                    {{"type", "image"},
                     {"source",
                      {{"type", "base64"}, {"media_type", "image/png"}, {"data", "AAAA"}}}}})}}}}}),
      "messages[0].content[1].type");
  EXPECT_NE(img.find("image"), std::string::npos) << img;
  expect_400(body({{"messages",
                    {{{"role", "user"},
                      {"content", json::array({{{"type", "document"}, {"source", "x"}}})}}}}}),
             "messages[0].content[0].type");
  expect_400(
      body({{"messages",
             {{{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", 1}}})}}}}}),
      "messages[0].content[0].text");
  expect_400(body({{"messages",
                    {{{"role", "user"},
                      {"content", json::array({{{"type", "text"},
                                                {"text", "x"},
                                                {"cache_control", {{"type", "forever"}}}}})}}}}}),
             "messages[0].content[0].cache_control.type");
  expect_400(
      body({{"messages",
             {{{"role", "assistant"},
               {"content",
                json::array(
                    {{{"type", "tool_use"}, {"id", "t"}, {"name", "f"}, {"input", "{}"}}})}}}}}),
      "messages[0].content[0].input");
  expect_400(body({{"messages",
                    {{{"role", "user"},
                      {"content", json::array({{{"type", "tool_result"}, {"content", "x"}}})}}}}}),
             "messages[0].content[0].tool_use_id");
  expect_400(body({{"system", 5}}), "system");
  expect_400(body({{"system", json::array({{{"type", "image"}}})}}), "system[0].type");
  expect_400(body({{"stop_sequences", "END"}}), "stop_sequences");
  expect_400(body({{"stop_sequences", {"a", 1}}}), "stop_sequences[1]");
  expect_400(body({{"stop_sequences", {""}}}), "stop_sequences[0]");
  expect_400(body({{"metadata", {{"session", "x"}}}}), "metadata.session");
  expect_400(body({{"metadata", {{"user_id", 3}}}}), "metadata.user_id");
  expect_400(body({{"temperature", "hot"}}), "temperature");
  expect_400(body({{"top_k", 1.5}}), "top_k");
  expect_400(body({{"stream", "yes"}}), "stream");
  try {
    (void)parse_messages_request(body({{"model", "other"}}), ctx_);
    ADD_FAILURE() << "unknown model accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.param(), "model");
  }

  // Tools and tool_choice.
  expect_400(body({{"tools", {{{"type", "web_search_20250305"}, {"name", "web_search"}}}}}),
             "tools[0].type");
  expect_400(body({{"tools", {{{"name", "f"}}}}, {"tool_choice", {{"type", "any"}}}}),
             "tools[0].input_schema");
  expect_400(body({{"tools", {{{"name", "bad name"}, {"input_schema", json::object()}}}}}),
             "tools[0].name");
  expect_400(body({{"tools", {{{"name", "f"}, {"input_schema", json::object()}, {"x", 1}}}}}),
             "tools[0].x");
  expect_400(body({{"tool_choice", {{"type", "any"}}}}), "tool_choice");
  expect_400(body({{"tools", {kWeather}}, {"tool_choice", "any"}}), "tool_choice");
  expect_400(body({{"tools", {kWeather}}, {"tool_choice", {{"type", "required"}}}}),
             "tool_choice.type");
  expect_400(body({{"tools", {kWeather}}, {"tool_choice", {{"type", "tool"}, {"name", "nope"}}}}),
             "tool_choice.name");
  expect_400(body({{"tools", {kWeather}}, {"tool_choice", {{"type", "tool"}}}}),
             "tool_choice.name");
  // auto (also the default with tools) needs the server's parser.
  const std::string autom = expect_400(body({{"tools", {kWeather}}}), "tool_choice");
  EXPECT_NE(autom.find("--enable-auto-tool-choice"), std::string::npos) << autom;
  // A schema the grammar cannot enforce is named as this API names it.
  const std::string schema =
      expect_400(body({{"tools",
                        {{{"name", "f"},
                          {"input_schema",
                           {{"type", "object"}, {"properties", {{"a", {{"type", "nope"}}}}}}}}}},
                       {"tool_choice", {{"type", "any"}}}}),
                 "tools[0].input_schema");
  EXPECT_NE(schema.find("tools[0].input_schema"), std::string::npos) << schema;

  // Thinking.
  const std::string th =
      expect_400(body({{"thinking", {{"type", "enabled"}, {"budget_tokens", 4}}}}), "thinking");
  EXPECT_NE(th.find("--reasoning-parser"), std::string::npos) << th;
  ctx_.parsing.reasoning_parser = ReasoningFormat::kQwen3;
  expect_400(body({{"thinking", {{"type", "enabled"}}}}), "thinking.budget_tokens");
  expect_400(body({{"thinking", {{"type", "enabled"}, {"budget_tokens", 8}}}}),
             "thinking.budget_tokens");
  expect_400(body({{"thinking", {{"type", "on"}}}}), "thinking.type");
  expect_400(body({{"thinking", {{"type", "disabled"}, {"budget_tokens", 3}}}}),
             "thinking.budget_tokens");

  // Past the context: named by messages or max_tokens, as on chat.
  expect_400(body({{"max_tokens", 100000}}), "max_tokens");
  expect_400(body({{"system", std::string(5000, 'x')}}), "messages");
}

TEST(MessagesErrors, AnthropicErrorShapeAndTypes) {
  const json j = json::parse(anthropic_error_body(bad_param("max_tokens", "Missing max_tokens")));
  EXPECT_EQ(j["type"], "error");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["message"], "Missing max_tokens");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_FALSE(json::parse(anthropic_error_body(ApiError(500, "x")))["error"].contains("param"));
  EXPECT_STREQ(anthropic_error_type(401), "authentication_error");
  EXPECT_STREQ(anthropic_error_type(403), "permission_error");
  EXPECT_STREQ(anthropic_error_type(404), "not_found_error");
  EXPECT_STREQ(anthropic_error_type(408), "timeout_error");
  EXPECT_STREQ(anthropic_error_type(413), "request_too_large");
  EXPECT_STREQ(anthropic_error_type(429), "rate_limit_error");
  EXPECT_STREQ(anthropic_error_type(503), "overloaded_error");
  EXPECT_STREQ(anthropic_error_type(500), "api_error");
}

// ---- the answer ---------------------------------------------------------------------------------

struct Event {
  std::string name;
  json data;
};

std::vector<Event> parse_events(const SseEvents& sse) {
  std::vector<Event> out;
  for (const auto& ev : sse) {
    Event e{ev.name, json::parse(ev.data)};
    EXPECT_EQ(e.data["type"], e.name) << ev.data;
    out.push_back(std::move(e));
  }
  return out;
}

void append(SseEvents& to, SseEvents more) {
  for (auto& e : more) to.push_back(std::move(e));
}

// Streams `pieces` through the chat output parsers and MessagesOutput; returns the events.
std::vector<Event> stream(const ChatOutputOptions& opts, const std::vector<std::string>& pieces,
                          const MessagesFinish& f, const MessagesUsage& u) {
  MessagesOutput out("msg_1", "tiny");
  SseEvents sse = out.start({u.prompt_tokens, 0, 0});
  ChatOutputParser parser(opts);
  auto feed = [&](const ChatDelta& d) { append(sse, out.feed(d.reasoning, d.content, d.calls)); };
  for (const auto& p : pieces) {
    if (opts.active())
      feed(parser.feed(p));
    else
      append(sse, out.feed({}, p, {}));
  }
  if (opts.active()) feed(parser.finish());
  append(sse, out.finish(f, u));
  return parse_events(sse);
}

std::vector<std::string> names(const std::vector<Event>& evs) {
  std::vector<std::string> n;
  for (const auto& e : evs) n.push_back(e.name);
  return n;
}

TEST(MessagesOutputTest, TextStreamAndMessage) {
  const MessagesUsage u{10, 4, 3};
  const auto evs = stream({}, {"Hel", "lo", "!"}, {FinishReason::kLength, {}}, u);
  EXPECT_EQ(names(evs), std::vector<std::string>({"message_start", "ping", "content_block_start",
                                                  "content_block_delta", "content_block_delta",
                                                  "content_block_delta", "content_block_stop",
                                                  "message_delta", "message_stop"}));
  const json& m = evs[0].data["message"];
  EXPECT_EQ(m["id"], "msg_1");
  EXPECT_EQ(m["type"], "message");
  EXPECT_EQ(m["role"], "assistant");
  EXPECT_EQ(m["model"], "tiny");
  EXPECT_EQ(m["content"], json::array());
  EXPECT_TRUE(m["stop_reason"].is_null());
  EXPECT_EQ(m["usage"]["input_tokens"], 10);
  EXPECT_EQ(evs[2].data["index"], 0);
  EXPECT_EQ(evs[2].data["content_block"], json({{"type", "text"}, {"text", ""}}));
  EXPECT_EQ(evs[3].data["delta"], json({{"type", "text_delta"}, {"text", "Hel"}}));
  EXPECT_EQ(evs[7].data["delta"]["stop_reason"], "max_tokens");
  EXPECT_TRUE(evs[7].data["delta"]["stop_sequence"].is_null());
  EXPECT_EQ(evs[7].data["usage"],
            json({{"input_tokens", 6}, {"cache_read_input_tokens", 4}, {"output_tokens", 3}}));

  const json full = json::parse(
      messages_body("msg_2", "tiny", "", "Hello!", {}, {FinishReason::kStop, "END"}, u).dump());
  EXPECT_EQ(full["content"], json::array({{{"type", "text"}, {"text", "Hello!"}}}));
  EXPECT_EQ(full["stop_reason"], "stop_sequence");
  EXPECT_EQ(full["stop_sequence"], "END");
  EXPECT_EQ(full["usage"]["cache_read_input_tokens"], 4);
  EXPECT_EQ(json::parse(messages_body("m", "t", "", "x", {}, {}, u).dump())["stop_reason"],
            "end_turn");
  // Nothing generated: no block.
  EXPECT_EQ(json::parse(messages_body("m", "t", "", "", {}, {}, u).dump())["content"],
            json::array());
}

TEST(MessagesOutputTest, ThinkingTextAndToolUseBlocks) {
  ChatOutputOptions opts;
  opts.reasoning = ReasoningFormat::kQwen3;
  opts.tools = ToolCallFormat::kHermes;
  const std::vector<std::string> pieces = {"<think>",
                                           "Need the",
                                           " weather.</think>\n\n",
                                           "Let me check.\n",
                                           "<tool_call>\n{\"name\": ",
                                           "\"get_weather\", \"arguments\": {\"city\": ",
                                           "\"Paris\"}}\n</tool_call>"};
  const auto evs = stream(opts, pieces, {FinishReason::kStop, {}}, {5, 0, 20});
  // Blocks: thinking 0, text 1, tool_use 2, each opened, filled and closed in order.
  std::vector<std::string> kinds;
  std::string thinking, text, args;
  int open = -1;
  for (const auto& e : evs) {
    if (e.name == "content_block_start") {
      EXPECT_EQ(open, -1) << "a block opened before the last closed";
      open = e.data["index"];
      EXPECT_EQ(open, int(kinds.size()));
      kinds.push_back(e.data["content_block"]["type"]);
    } else if (e.name == "content_block_delta") {
      EXPECT_EQ(e.data["index"], open);
      const json& d = e.data["delta"];
      if (d["type"] == "thinking_delta") thinking += d["thinking"].get<std::string>();
      if (d["type"] == "text_delta") text += d["text"].get<std::string>();
      if (d["type"] == "input_json_delta") args += d["partial_json"].get<std::string>();
    } else if (e.name == "content_block_stop") {
      EXPECT_EQ(e.data["index"], open);
      open = -1;
    }
  }
  EXPECT_EQ(kinds, std::vector<std::string>({"thinking", "text", "tool_use"}));
  EXPECT_EQ(thinking, "Need the weather.");
  EXPECT_NE(text.find("Let me check."), std::string::npos) << text;
  EXPECT_EQ(json::parse(args), json({{"city", "Paris"}}));
  EXPECT_EQ(evs.back().name, "message_stop");
  const json& md = evs[evs.size() - 2].data;
  EXPECT_EQ(md["delta"]["stop_reason"], "tool_use");
  for (const auto& e : evs)
    if (e.name == "content_block_start" && e.data["content_block"]["type"] == "tool_use") {
      EXPECT_EQ(e.data["content_block"]["name"], "get_weather");
      EXPECT_EQ(e.data["content_block"]["id"].get<std::string>().rfind("toolu_", 0), 0u);
      EXPECT_EQ(e.data["content_block"]["input"], json::object());
    }

  // The whole answer from the parsed totals.
  ChatOutputParser parser(opts);
  for (const auto& p : pieces) parser.feed(p);
  parser.finish();
  const json m = json::parse(messages_body("m", "tiny", parser.reasoning(), parser.content(),
                                           parser.calls(), {FinishReason::kStop, {}}, {5, 0, 20})
                                 .dump());
  ASSERT_EQ(m["content"].size(), 3u) << m.dump(1);
  EXPECT_EQ(m["content"][0],
            json({{"type", "thinking"}, {"thinking", "Need the weather."}, {"signature", ""}}));
  EXPECT_EQ(m["content"][1]["type"], "text");
  EXPECT_EQ(m["content"][2]["type"], "tool_use");
  EXPECT_EQ(m["content"][2]["name"], "get_weather");
  EXPECT_EQ(m["content"][2]["input"], json({{"city", "Paris"}}));
  EXPECT_EQ(m["stop_reason"], "tool_use");
  // A length cut wins over the call.
  EXPECT_EQ(messages_stop_reason({FinishReason::kLength, {}}, true), "max_tokens");
}

TEST(MessagesOutputTest, WhitespaceBetweenBlocksMakesNoTextBlock) {
  ChatOutputOptions opts;
  opts.reasoning = ReasoningFormat::kQwen3;
  opts.tools = ToolCallFormat::kHermes;
  const auto evs = stream(opts,
                          {"<think>x</think>", "\n\n", "<tool_call>\n{\"name\": \"f\", ",
                           "\"arguments\": {}}\n</tool_call>"},
                          {FinishReason::kStop, {}}, {1, 0, 1});
  std::vector<std::string> kinds;
  for (const auto& e : evs)
    if (e.name == "content_block_start") kinds.push_back(e.data["content_block"]["type"]);
  EXPECT_EQ(kinds, std::vector<std::string>({"thinking", "tool_use"}));
  // Whitespace alone is still the answer's text.
  const auto ws = stream({}, {" ", "\n"}, {FinishReason::kStop, {}}, {1, 0, 2});
  ASSERT_EQ(ws[2].name, "content_block_start");
  EXPECT_EQ(ws[3].data["delta"]["text"], " \n");
  // Leading whitespace is kept in front of the text that follows it.
  const auto lead = stream({}, {"\n", "Hi"}, {FinishReason::kStop, {}}, {1, 0, 2});
  EXPECT_EQ(lead[3].data["delta"]["text"], "\nHi");
}

TEST(MessagesOutputTest, ErrorEvent) {
  const auto evs = parse_events({MessagesOutput::error_event(ApiError(
      408, "too slow", "timeout_error", std::nullopt, std::optional<std::string>("timeout")))});
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].name, "error");
  EXPECT_EQ(evs[0].data["error"]["type"], "timeout_error");
  EXPECT_EQ(evs[0].data["error"]["message"], "too slow");
}

// ---- through the server ------------------------------------------------------------------------

class MessagesServerTest : public ::testing::Test {
 protected:
  void start() { start(ServerConfig(), FakeConfig()); }
  void start(const ServerConfig& c, const FakeConfig& fc) {
    ServerConfig cfg = c;
    gen_ = std::make_shared<FakeGenerator>(fc);
    cfg.served_model_names = {"tiny"};
    port_ = start_test_server(cfg, gen_, server_);
  }
  // A server whose fake model answers `reply` and then stops (EOS).
  void start_replying(const std::string& reply, ChatParsing parsing = {}) {
    ServerConfig cfg;
    cfg.chat_parsing = parsing;
    FakeConfig fc;
    fc.reply = reply;
    fc.eos_after = int32_t(reply.size());
    fc.max_model_len = 4096;
    start(cfg, fc);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (gen_) gen_->shutdown();
  }
  HttpResult messages(const json& b,
                      const std::vector<std::pair<std::string, std::string>>& h = {}) {
    return post(port_, "/v1/messages", b, h);
  }
  // An Anthropic error answer: status, {"type": "error", "error": {"type", "message"}}.
  json expect_error(const HttpResult& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body;
    const json j = json::parse(r.body, nullptr, false);
    EXPECT_EQ(j.value("type", ""), "error") << r.body;
    EXPECT_TRUE(j.contains("error") && j["error"]["message"].is_string()) << r.body;
    if (j.contains("error")) {
      EXPECT_EQ(j["error"]["type"], type) << r.body;
    }
    return j;
  }

  std::shared_ptr<FakeGenerator> gen_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

// The named events of an SSE body.
std::vector<Event> body_events(const std::string& body) {
  SseEvents evs;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string ev = body.substr(pos, end - pos);
    const size_t nl = ev.find('\n');
    EXPECT_EQ(ev.rfind("event: ", 0), 0u) << ev;
    EXPECT_EQ(ev.compare(nl + 1, 6, "data: "), 0) << ev;
    evs.push_back({ev.substr(7, nl - 7), ev.substr(nl + 7)});
    pos = end + 2;
  }
  return parse_events(evs);
}

TEST_F(MessagesServerTest, TextAnswerStopReasonsAndUsage) {
  start();
  auto r = messages(body({{"max_tokens", 5}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["id"].get<std::string>().rfind("msg_", 0), 0u);
  EXPECT_EQ(j["type"], "message");
  EXPECT_EQ(j["role"], "assistant");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["content"], json::array({{{"type", "text"}, {"text", "Hello"}}}));
  EXPECT_EQ(j["stop_reason"], "max_tokens");
  EXPECT_TRUE(j["stop_sequence"].is_null());
  const int64_t prompt = int64_t(gen_->last_request().prompt_token_ids.size());
  EXPECT_EQ(j["usage"],
            json({{"input_tokens", prompt}, {"cache_read_input_tokens", 0}, {"output_tokens", 5}}));
  // The same prompt again: part of it from the prefix cache.
  const json again = messages(body({{"max_tokens", 5}})).json();
  EXPECT_GT(again["usage"]["cache_read_input_tokens"], 0);
  EXPECT_EQ(again["usage"]["input_tokens"].get<int64_t>() +
                again["usage"]["cache_read_input_tokens"].get<int64_t>(),
            prompt);

  // A stop sequence: not in the text, named in the answer.
  const json st = messages(body({{"max_tokens", 30}, {"stop_sequences", {"world"}}})).json();
  EXPECT_EQ(st["content"][0]["text"], "Hello ");
  EXPECT_EQ(st["stop_reason"], "stop_sequence");
  EXPECT_EQ(st["stop_sequence"], "world");

  // count_tokens: the prompt the same body makes.
  json cb = body();
  cb.erase("max_tokens");
  auto c = post(port_, "/v1/messages/count_tokens", cb);
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.json(), json({{"input_tokens", prompt}}));
  EXPECT_EQ(gen_->num_submitted(), 3);  // counting submits nothing
}

TEST_F(MessagesServerTest, EndTurnAndStreamedText) {
  start_replying("Hi there.");
  auto r = messages(body({{"max_tokens", 50}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["stop_reason"], "end_turn");
  EXPECT_EQ(r.json()["content"][0]["text"], "Hi there.");

  r = messages(body({{"max_tokens", 50}, {"stream", true}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type").rfind("text/event-stream", 0), 0u);
  const auto evs = body_events(r.body);
  ASSERT_GE(evs.size(), 6u);
  EXPECT_EQ(evs[0].name, "message_start");
  EXPECT_EQ(evs[0].data["message"]["id"].get<std::string>().rfind("msg_", 0), 0u);
  EXPECT_EQ(evs[1].name, "ping");
  EXPECT_EQ(evs[2].name, "content_block_start");
  std::string text;
  for (const auto& e : evs)
    if (e.name == "content_block_delta") text += e.data["delta"]["text"].get<std::string>();
  EXPECT_EQ(text, "Hi there.");
  EXPECT_EQ(evs[evs.size() - 3].name, "content_block_stop");
  EXPECT_EQ(evs[evs.size() - 2].name, "message_delta");
  EXPECT_EQ(evs[evs.size() - 2].data["delta"]["stop_reason"], "end_turn");
  EXPECT_EQ(evs[evs.size() - 2].data["usage"]["output_tokens"], 10);  // 9 bytes and EOS
  EXPECT_EQ(evs.back().name, "message_stop");
}

TEST_F(MessagesServerTest, ToolUseAndToolResultTurn) {
  start_replying(
      "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>",
      {true, ToolCallFormat::kHermes, std::nullopt});
  const json b = body({{"max_tokens", 400}, {"tools", {kWeather}}});
  auto r = messages(b);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["stop_reason"], "tool_use");
  ASSERT_EQ(j["content"].size(), 2u) << j.dump(1);
  EXPECT_EQ(j["content"][0], json({{"type", "text"}, {"text", "Checking."}}));
  const json use = j["content"][1];
  EXPECT_EQ(use["type"], "tool_use");
  EXPECT_EQ(use["name"], "get_weather");
  EXPECT_EQ(use["input"], json({{"city", "Paris"}}));
  EXPECT_EQ(use["id"].get<std::string>().rfind("toolu_", 0), 0u);

  // Streamed: the same blocks.
  json sb = b;
  sb["stream"] = true;
  const auto evs = body_events(messages(sb).body);
  std::string args;
  json tool_start;
  for (const auto& e : evs) {
    if (e.name == "content_block_start" && e.data["content_block"]["type"] == "tool_use")
      tool_start = e.data["content_block"];
    if (e.name == "content_block_delta" && e.data["delta"]["type"] == "input_json_delta")
      args += e.data["delta"]["partial_json"].get<std::string>();
  }
  EXPECT_EQ(tool_start["name"], "get_weather");
  EXPECT_EQ(json::parse(args), json({{"city", "Paris"}}));
  EXPECT_EQ(evs[evs.size() - 2].data["delta"]["stop_reason"], "tool_use");

  // The next turn: the assistant's tool_use and the user's tool_result reach the template.
  json next = b;
  next["messages"].push_back({{"role", "assistant"}, {"content", j["content"]}});
  next["messages"].push_back({{"role", "user"},
                              {"content", json::array({{{"type", "tool_result"},
                                                        {"tool_use_id", use["id"]},
                                                        {"content", "Sunny, 21 C"}}})}});
  ASSERT_EQ(messages(next).status, 200);
  const std::string prompt = gen_->decode(gen_->last_request().prompt_token_ids, true);
  EXPECT_NE(prompt.find("<|tool|>Sunny, 21 C"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("<|assistant|>Checking."), std::string::npos) << prompt;
}

TEST_F(MessagesServerTest, ThinkingBlocksFromTheReasoningParser) {
  start_replying("<think>Short question.</think>\n\nHello!",
                 {false, std::nullopt, ReasoningFormat::kQwen3});
  const json b =
      body({{"max_tokens", 100}, {"thinking", {{"type", "enabled"}, {"budget_tokens", 50}}}});
  auto r = messages(b);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  ASSERT_EQ(j["content"].size(), 2u) << j.dump(1);
  EXPECT_EQ(j["content"][0],
            json({{"type", "thinking"}, {"thinking", "Short question."}, {"signature", ""}}));
  EXPECT_EQ(j["content"][1]["type"], "text");
  EXPECT_NE(j["content"][1]["text"].get<std::string>().find("Hello!"), std::string::npos);
  EXPECT_EQ(j["stop_reason"], "end_turn");
  // Streamed: a thinking block of thinking_delta events, then the text block.
  json sb = b;
  sb["stream"] = true;
  std::string thinking;
  std::vector<std::string> kinds;
  for (const auto& e : body_events(messages(sb).body)) {
    if (e.name == "content_block_start") kinds.push_back(e.data["content_block"]["type"]);
    if (e.name == "content_block_delta" && e.data["delta"]["type"] == "thinking_delta")
      thinking += e.data["delta"]["thinking"].get<std::string>();
  }
  EXPECT_EQ(kinds, std::vector<std::string>({"thinking", "text"}));
  EXPECT_EQ(thinking, "Short question.");
}

TEST_F(MessagesServerTest, ErrorsInAnthropicShape) {
  ServerConfig cfg;
  cfg.api_keys = {"sk-good"};
  cfg.request_timeout_s = 0.3;
  start(cfg, FakeConfig());
  const std::vector<std::pair<std::string, std::string>> key = {{"x-api-key", "sk-good"}};
  // Keys: x-api-key or Bearer; anthropic-version may be anything.
  expect_error(messages(body()), 401, "authentication_error");
  expect_error(messages(body(), {{"x-api-key", "sk-bad"}}), 401, "authentication_error");
  EXPECT_EQ(
      messages(body(), {{"x-api-key", "sk-good"}, {"anthropic-version", "2023-06-01"}}).status,
      200);
  EXPECT_EQ(messages(body(), {{"Authorization", "Bearer sk-good"}}).status, 200);
  EXPECT_EQ(messages(body(), {{"x-api-key", "sk-good"}, {"anthropic-version", "whatever"}}).status,
            200);
  // Chat keeps OpenAI's shape and only Bearer.
  auto chat = post(port_, "/v1/chat/completions",
                   {{"messages", {{{"role", "user"}, {"content", "hi"}}}}}, key);
  EXPECT_EQ(chat.status, 401);
  EXPECT_TRUE(chat.json()["error"].contains("code"));

  json no_max = body();
  no_max.erase("max_tokens");
  json e = expect_error(messages(no_max, key), 400, "invalid_request_error");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("max_tokens"), std::string::npos);
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  expect_error(messages(body({{"logprobs", true}}), key), 400, "invalid_request_error");
  expect_error(messages(body({{"model", "nope"}}), key), 404, "not_found_error");
  expect_error(http_call(port_, http::verb::post, "/v1/messages", "{not json", key), 400,
               "invalid_request_error");
  EXPECT_EQ(gen_->num_submitted(), 3);

  // A failure mid-request: the timeout, plain (408) and streamed (an error event).
  gen_->pause(true);
  expect_error(messages(body(), key), 408, "timeout_error");
  auto r = messages(body({{"stream", true}}), key);
  ASSERT_EQ(r.status, 200);
  const auto evs = body_events(r.body);
  ASSERT_GE(evs.size(), 3u);
  EXPECT_EQ(evs[0].name, "message_start");
  EXPECT_EQ(evs.back().name, "error");
  EXPECT_EQ(evs.back().data["error"]["type"], "timeout_error");
  gen_->pause(false);

  const std::string page = get(port_, "/metrics").body;
  EXPECT_GT(metric_value(page, "inferd:http_requests_total", "handler=\"/v1/messages\""), 0);
}

}  // namespace
}  // namespace inferd::server::testing
