// Tool-call and reasoning parsers: every format whole and fed in pieces of every size (a streamed
// reply must reassemble to the plain one), several calls, text around calls, malformed output,
// and the grammars that enforce tool_choice "required" / a named function.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/chat_output.h"
#include "server/reasoning.h"
#include "server/tool_calls.h"

namespace inferd::server {
namespace {

using nlohmann::json;

struct Parsed {
  std::string content;
  std::vector<ToolCall> calls;
};

// Feeds `text` in pieces of `step` bytes (0: all at once) and rebuilds what a streaming client
// sees from the deltas; checks the deltas against the parser's own totals.
Parsed parse(ToolCallFormat f, const std::string& text, size_t step = 0,
             const std::string& fn = "") {
  ToolCallParser p(f, fn);
  Parsed streamed;
  auto take = [&](const ToolParseDelta& d) {
    streamed.content += d.content;
    for (const auto& c : d.calls) {
      if (!c.id.empty()) {
        EXPECT_EQ(c.index, streamed.calls.size()) << "a call is announced once, in order";
        EXPECT_TRUE(c.arguments.empty()) << "the announcing delta has empty arguments";
        streamed.calls.push_back({c.id, c.name, ""});
      } else {
        ASSERT_LT(c.index, streamed.calls.size()) << "arguments before the call's announcement";
        EXPECT_EQ(c.index, streamed.calls.size() - 1) << "arguments only for the latest call";
        streamed.calls[c.index].arguments += c.arguments;
      }
    }
  };
  if (step == 0) {
    take(p.feed(text));
  } else {
    for (size_t i = 0; i < text.size(); i += step) take(p.feed(text.substr(i, step)));
  }
  take(p.finish());
  EXPECT_EQ(streamed.content, p.content()) << "step " << step;
  EXPECT_EQ(streamed.calls.size(), p.calls().size()) << "step " << step;
  for (size_t i = 0; i < std::min(streamed.calls.size(), p.calls().size()); ++i) {
    EXPECT_EQ(streamed.calls[i].id, p.calls()[i].id);
    EXPECT_EQ(streamed.calls[i].name, p.calls()[i].name);
    EXPECT_EQ(streamed.calls[i].arguments, p.calls()[i].arguments) << "step " << step;
  }
  return {p.content(), p.calls()};
}

// Same result whatever the piece size.
Parsed parse_all_ways(ToolCallFormat f, const std::string& text, const std::string& fn = "") {
  Parsed whole = parse(f, text, 0, fn);
  for (size_t step : {1, 2, 3, 5, 8, 13}) {
    Parsed p = parse(f, text, step, fn);
    EXPECT_EQ(p.content, whole.content) << "step " << step;
    EXPECT_EQ(p.calls.size(), whole.calls.size()) << "step " << step;
    for (size_t i = 0; i < std::min(p.calls.size(), whole.calls.size()); ++i) {
      EXPECT_EQ(p.calls[i].name, whole.calls[i].name);
      EXPECT_EQ(p.calls[i].arguments, whole.calls[i].arguments) << "step " << step;
    }
  }
  return whole;
}

TEST(ToolCallParser, ParserNames) {
  EXPECT_EQ(tool_call_parser_from_name("hermes"), ToolCallFormat::kHermes);
  EXPECT_EQ(tool_call_parser_from_name("llama3_json"), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(tool_call_parser_from_name("mistral"), ToolCallFormat::kMistral);
  EXPECT_FALSE(tool_call_parser_from_name("pythonic"));
  const std::string id = make_tool_call_id();
  EXPECT_EQ(id.rfind("chatcmpl-tool-", 0), 0u);
  EXPECT_EQ(id.size(), 14u + 32u);
  EXPECT_NE(id, make_tool_call_id());
}

TEST(ToolCallParser, HermesOneCall) {
  const auto r = parse_all_ways(
      ToolCallFormat::kHermes,
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": "
      "3}}\n</tool_call>");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(r.calls[0].arguments), json({{"city", "Paris"}, {"days", 3}}));
  EXPECT_EQ(r.calls[0].arguments, "{\"city\": \"Paris\", \"days\": 3}");
}

TEST(ToolCallParser, HermesSeveralCallsWithTextBefore) {
  const auto r = parse_all_ways(
      ToolCallFormat::kHermes,
      "Let me look that up.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, {\"y\": "
      "\"}\"}]}}\n</tool_call>\n<tool_call>\n{\"arguments\": {}, \"name\": \"b\"}\n</tool_call>");
  EXPECT_EQ(r.content, "Let me look that up.");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].name, "a");
  EXPECT_EQ(json::parse(r.calls[0].arguments), json::parse(R"({"x": [1, {"y": "}"}]})"));
  EXPECT_EQ(r.calls[1].name, "b");  // name after the arguments: announced at the end
  EXPECT_EQ(r.calls[1].arguments, "{}");
  EXPECT_NE(r.calls[0].id, r.calls[1].id);
}

TEST(ToolCallParser, HermesArgumentsAsStringOrMissing) {
  auto r = parse_all_ways(ToolCallFormat::kHermes,
                          "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}"
                          "</tool_call>");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, "{\"a\": 1}");
  r = parse_all_ways(ToolCallFormat::kHermes, "<tool_call>{\"name\": \"f\"}</tool_call>");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, "{}");
}

TEST(ToolCallParser, HermesPlainTextAndLookalikes) {
  auto r = parse_all_ways(ToolCallFormat::kHermes, "Just an answer, with < and <tool but no call.");
  EXPECT_EQ(r.content, "Just an answer, with < and <tool but no call.");
  EXPECT_TRUE(r.calls.empty());
  // Ends with a partial marker: held while streaming, content at the end.
  r = parse_all_ways(ToolCallFormat::kHermes, "text <tool_ca");
  EXPECT_EQ(r.content, "text <tool_ca");
  EXPECT_TRUE(r.calls.empty());
}

TEST(ToolCallParser, HermesMalformedCallsAreContent) {
  // Not JSON after the marker: the marker and the text stay content.
  auto r =
      parse_all_ways(ToolCallFormat::kHermes, "<tool_call>call get_weather(Paris)</tool_call>");
  EXPECT_EQ(r.content, "<tool_call>call get_weather(Paris)</tool_call>");
  EXPECT_TRUE(r.calls.empty());
  // JSON without a name is no call.
  r = parse_all_ways(ToolCallFormat::kHermes, "<tool_call>{\"arguments\": {}}</tool_call> ok");
  EXPECT_EQ(r.content, "<tool_call>{\"arguments\": {}}</tool_call> ok");
  EXPECT_TRUE(r.calls.empty());
  // A name that is not a string.
  r = parse_all_ways(ToolCallFormat::kHermes, "<tool_call>{\"name\": 7}</tool_call>");
  EXPECT_TRUE(r.calls.empty());
  // An empty name, complete or followed by garbage (found by fuzz_tool_calls, issue 32).
  r = parse_all_ways(ToolCallFormat::kHermes,
                     "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>");
  EXPECT_TRUE(r.calls.empty());
  EXPECT_EQ(r.content, "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>");
  r = parse_all_ways(ToolCallFormat::kHermes, "<tool_call>{\"name\" :\"\"2f, x}</tool_call> done");
  EXPECT_TRUE(r.calls.empty());
  for (ToolCallFormat f :
       {ToolCallFormat::kLlama3Json, ToolCallFormat::kMistral, ToolCallFormat::kJsonArray}) {
    EXPECT_TRUE(
        parse_all_ways(f, "[TOOL_CALLS][{\"name\": \"\", \"parameters\": {}}]").calls.empty());
    EXPECT_TRUE(parse_all_ways(f, "{\"name\": \"\", \"parameters\": {}}").calls.empty());
  }
  // Cut off before the name was complete (max_tokens): content.
  r = parse_all_ways(ToolCallFormat::kHermes, "<tool_call>\n{\"name\": \"get_wea");
  EXPECT_EQ(r.content, "<tool_call>\n{\"name\": \"get_wea");
  EXPECT_TRUE(r.calls.empty());
  // A malformed call, then a good one: the good one is found.
  r = parse_all_ways(ToolCallFormat::kHermes,
                     "<tool_call>oops</tool_call><tool_call>{\"name\": \"g\", \"arguments\": "
                     "{\"k\": true}}</tool_call>");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "g");
  EXPECT_EQ(r.content, "<tool_call>oops</tool_call>");
}

TEST(ToolCallParser, HermesCutInsideArgumentsKeepsTheAnnouncedCall) {
  // Announced (the name was complete), then cut: the call keeps the arguments streamed so far.
  const auto r = parse_all_ways(ToolCallFormat::kHermes,
                                "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "f");
  EXPECT_EQ(r.calls[0].arguments, "{\"a\": 1");
  EXPECT_EQ(r.content, "");
}

TEST(ToolCallParser, HermesMissingCloseMarkerIsForgiven) {
  const auto r = parse_all_ways(ToolCallFormat::kHermes,
                                "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"b\"}}\n");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, "{\"a\": \"b\"}");
  EXPECT_EQ(r.content, "");
}

TEST(ToolCallParser, Llama3Json) {
  auto r = parse_all_ways(ToolCallFormat::kLlama3Json,
                          "{\"name\": \"search\", \"parameters\": {\"q\": \"cats\"}}");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "search");
  EXPECT_EQ(r.calls[0].arguments, "{\"q\": \"cats\"}");
  r = parse_all_ways(ToolCallFormat::kLlama3Json,
                     "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", "
                     "\"arguments\": {\"n\": -1.5e3}}");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1].name, "b");
  EXPECT_EQ(json::parse(r.calls[1].arguments)["n"], -1500.0);
  EXPECT_EQ(r.content, "");
  // Words, or JSON that is not a call: content.
  r = parse_all_ways(ToolCallFormat::kLlama3Json, "The answer is 4.");
  EXPECT_EQ(r.content, "The answer is 4.");
  EXPECT_TRUE(r.calls.empty());
  r = parse_all_ways(ToolCallFormat::kLlama3Json, "{\"answer\": 4}");
  EXPECT_EQ(r.content, "{\"answer\": 4}");
  EXPECT_TRUE(r.calls.empty());
}

TEST(ToolCallParser, Mistral) {
  auto r = parse_all_ways(ToolCallFormat::kMistral,
                          "Sure. [TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}}, "
                          "{\"name\": \"b\", \"arguments\": {\"y\": [2]}}]");
  EXPECT_EQ(r.content, "Sure.");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].arguments, "{\"x\": 1}");
  EXPECT_EQ(r.calls[1].name, "b");
  EXPECT_EQ(r.calls[1].arguments, "{\"y\": [2]}");
  r = parse_all_ways(ToolCallFormat::kMistral, "[TOOL_CALLS] not json");
  EXPECT_EQ(r.content, "[TOOL_CALLS] not json");
  EXPECT_TRUE(r.calls.empty());
}

TEST(ToolCallParser, VllmRequiredArrayAndNamedArguments) {
  auto r = parse_all_ways(ToolCallFormat::kJsonArray,
                          "[{\"name\": \"a\", \"parameters\": {\"x\": \"[\"}}, {\"name\": \"b\", "
                          "\"parameters\": {}}]");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].arguments, "{\"x\": \"[\"}");
  EXPECT_EQ(r.calls[1].arguments, "{}");
  EXPECT_EQ(r.content, "");
  r = parse_all_ways(ToolCallFormat::kArguments, "{\"city\": \"Oslo\"}", "get_weather");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(r.calls[0].arguments, "{\"city\": \"Oslo\"}");
  EXPECT_EQ(r.content, "");
}

TEST(ToolCallParser, ArgumentsStreamBeforeTheCallEnds) {
  ToolCallParser p(ToolCallFormat::kHermes);
  auto d = p.feed("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"text\": \"hel");
  ASSERT_EQ(d.calls.size(), 2u);
  EXPECT_EQ(d.calls[0].name, "f");
  EXPECT_EQ(d.calls[1].arguments, "{\"text\": \"hel");
  d = p.feed("lo\"}}\n</tool_call>");
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.calls[0].arguments, "lo\"}");
  EXPECT_TRUE(d.content.empty());
  EXPECT_EQ(p.calls().size(), 1u);
}

TEST(ToolCallParser, DeepNestingIsMalformedNotACrash) {
  const std::string deep = "<tool_call>{\"name\": \"f\", \"arguments\": " + std::string(5000, '[');
  const auto r = parse(ToolCallFormat::kHermes, deep + "</tool_call>");
  ASSERT_EQ(r.calls.size(), 1u);  // announced before the nesting went too deep
  EXPECT_EQ(r.content, "");
}

// Random texts made of the pieces that matter to the parsers: whatever the model writes, the
// parser does not crash, and streaming it in pieces of any size gives the plain answer.
TEST(ToolCallParser, RandomTextsStreamLikeTheyParse) {
  const std::vector<std::string> pieces = {"<tool_call>",
                                           "</tool_call>",
                                           "[TOOL_CALLS]",
                                           "<|python_tag|>",
                                           "{",
                                           "}",
                                           "[",
                                           "]",
                                           ":",
                                           ",",
                                           ";",
                                           " ",
                                           "\n",
                                           "\"",
                                           "\\",
                                           "\"name\"",
                                           "\"arguments\"",
                                           "\"parameters\"",
                                           "\"f\"",
                                           "\"x\"",
                                           "1",
                                           "-2.5e3",
                                           "true",
                                           "null",
                                           "<tool",
                                           "_call>",
                                           "abc",
                                           "\u00e9",
                                           "{\"name\": \"f\", \"arguments\": ",
                                           "{\"name\": \"g\", \"parameters\": ",
                                           "{}}",
                                           "{\"a\": [1]}}",
                                           "\"}\"}"};
  size_t found = 0;
  std::mt19937 rng(42);
  for (ToolCallFormat f :
       {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json, ToolCallFormat::kMistral,
        ToolCallFormat::kJsonArray, ToolCallFormat::kArguments}) {
    for (int n = 0; n < 1000; ++n) {
      std::string text;
      const int len = int(rng() % 40);
      for (int i = 0; i < len; ++i) text += pieces[rng() % pieces.size()];
      SCOPED_TRACE(text);
      found += parse_all_ways(f, text, "fn").calls.size();
      if (::testing::Test::HasFailure()) return;
    }
  }
  EXPECT_GT(found, 300u) << "the random texts hold calls too";
}

// Well-formed calls in random spacing, split anywhere: always found, whole.
TEST(ToolCallParser, WellFormedCallsAreFoundWhateverTheSpacing) {
  std::mt19937 rng(7);
  auto ws = [&] { return std::string(rng() % 3, rng() % 2 ? ' ' : '\n'); };
  for (int n = 0; n < 200; ++n) {
    const int calls = 1 + int(rng() % 3);
    std::string text;
    if (rng() % 2) {
      text += "Some text.";
      text += ws();
    }
    for (int i = 0; i < calls; ++i) {
      for (const std::string& part :
           {std::string("<tool_call>"), ws(), std::string("{"), ws(), std::string("\"name\""), ws(),
            std::string(":"), ws(), fmt::format("\"f{}\",", i), ws(), std::string("\"arguments\":"),
            ws(), fmt::format("{{\"k\": [{}, \"}}]\"]}}", i), ws(), std::string("}"), ws(),
            std::string("</tool_call>"), ws()})
        text += part;
    }
    SCOPED_TRACE(text);
    const auto r = parse_all_ways(ToolCallFormat::kHermes, text);
    ASSERT_EQ(r.calls.size(), size_t(calls));
    for (int i = 0; i < calls; ++i) {
      EXPECT_EQ(r.calls[i].name, fmt::format("f{}", i));
      EXPECT_EQ(json::parse(r.calls[i].arguments)["k"][0], i);
    }
    EXPECT_TRUE(r.content.empty() || r.content == "Some text.");
  }
}

TEST(ToolCallGrammar, FormatsWrapTheSchemas) {
  std::vector<ToolSpec> tools(2);
  tools[0].name = "get_weather";
  tools[0].parameters = nlohmann::ordered_json::parse(
      R"({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})");
  tools[1].name = "noop";
  tools[1].parameters = {{"type", "object"}, {"properties", nlohmann::ordered_json::object()}};
  const std::string h = tool_call_grammar(ToolCallFormat::kHermes, tools, false);
  EXPECT_NE(h.find("root ::= (\"\\n\" \"\\n\"?)? \"<tool_call>\\n\" call \"\\n</tool_call>\" ("),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("call ::= call0 | call1"), std::string::npos) << h;
  EXPECT_NE(h.find("get_weather"), std::string::npos);
  const std::string single = tool_call_grammar(ToolCallFormat::kHermes, tools, true);
  EXPECT_EQ(single.find(")*", single.find("root ::=")), std::string::npos) << "one call only";
  const std::string m = tool_call_grammar(ToolCallFormat::kMistral, tools, false);
  EXPECT_NE(m.find("\"[TOOL_CALLS][\""), std::string::npos) << m;
  // The marker as a begin token (a special token no grammar writes): the grammar starts at "[".
  const std::string mt = tool_call_grammar(ToolCallFormat::kMistral, tools, false, false);
  EXPECT_EQ(mt.find("TOOL_CALLS"), std::string::npos) << mt;
  EXPECT_NE(mt.find("\"[\""), std::string::npos) << mt;
  const std::string l = tool_call_grammar(ToolCallFormat::kLlama3Json, tools, false);
  EXPECT_NE(l.find("parameters"), std::string::npos) << l;
  EXPECT_NE(l.find("\"; \""), std::string::npos) << l;
  const std::string a = tool_call_grammar(ToolCallFormat::kArguments, {tools[0]}, true);
  EXPECT_NE(a.find("root ::="), std::string::npos);
  EXPECT_EQ(a.find("get_weather"), std::string::npos) << "the bare arguments, no name";
  tools[0].parameters = {{"type", "object"}, {"not", {{"type", "null"}}}};
  EXPECT_THROW(tool_call_grammar(ToolCallFormat::kHermes, tools, false), Error);
}

// ---- reasoning ----------------------------------------------------------------------------

ReasoningDelta split(ReasoningFormat f, bool inside, const std::string& text, size_t step) {
  ReasoningParser p(f, inside);
  ReasoningDelta all;
  auto take = [&](const ReasoningDelta& d) {
    all.reasoning += d.reasoning;
    all.content += d.content;
  };
  if (step == 0)
    take(p.feed(text));
  else
    for (size_t i = 0; i < text.size(); i += step) take(p.feed(text.substr(i, step)));
  take(p.finish());
  EXPECT_EQ(all.reasoning, p.reasoning());
  EXPECT_EQ(all.content, p.content());
  return all;
}

void expect_split(ReasoningFormat f, bool inside, const std::string& text,
                  const std::string& reasoning, const std::string& content) {
  for (size_t step : {0, 1, 2, 3, 7}) {
    const auto d = split(f, inside, text, step);
    EXPECT_EQ(d.reasoning, reasoning) << text << " step " << step;
    EXPECT_EQ(d.content, content) << text << " step " << step;
  }
}

// gpt-oss harmony (--reasoning-parser openai_gptoss): a fake token stream as the detokenizer gives
// it with the special tokens kept, fed whole and in pieces of 1, 2, 3 and 7 bytes (every marker
// split somewhere).
TEST(ReasoningHarmony, AnalysisIsReasoningFinalIsContent) {
  const auto g = ReasoningFormat::kGptOss;
  expect_split(g, false,
               "<|channel|>analysis<|message|>User asks 2+2. Answer 4.<|end|>"
               "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.",
               "User asks 2+2. Answer 4.", "2 + 2 = 4.");
  // The stop token may be in the text (include_stop_str_in_output) or not.
  expect_split(g, false,
               "<|channel|>analysis<|message|>a<b <|x|> c<|end|><|start|>assistant<|channel|>final"
               "<|message|>done<|return|>",
               "a<b <|x|> c", "done");
  // No analysis (reasoning_effort low may skip it), and a final message only.
  expect_split(g, false, "<|channel|>final<|message|>just this", "", "just this");
  // Stopped inside the reasoning (max_tokens): what came is reasoning, no content.
  expect_split(g, false, "<|channel|>analysis<|message|>thinking about", "thinking about", "");
  // Commentary (a tool-call preamble or call) is content, headers with recipients included.
  expect_split(
      g, false,
      "<|channel|>analysis<|message|>need weather<|end|><|start|>assistant<|channel|>"
      "commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}"
      "<|call|>",
      "need weather", "{\"city\":\"Paris\"}");
  // Two analysis messages (a new <|start|> without <|end|> before it).
  expect_split(g, false,
               "<|channel|>analysis<|message|>one<|start|>assistant<|channel|>analysis<|message|>"
               " two<|end|><|start|>assistant<|channel|>final<|message|>ok",
               "one two", "ok");
  // Output that is not harmony at all is plain content.
  expect_split(g, false, "Hello there <|end|>", "", "Hello there <|end|>");
  // An unfinished header at the end carries no text.
  expect_split(g, false, "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|chan", "x", "");
}

TEST(ReasoningHarmony, ParserNameAndStart) {
  EXPECT_EQ(reasoning_parser_from_name("openai_gptoss"), ReasoningFormat::kGptOss);
  EXPECT_EQ(reasoning_parser_from_name("gpt_oss"), ReasoningFormat::kGptOss);
  EXPECT_NE(std::string(reasoning_parser_names()).find("openai_gptoss"), std::string::npos);
  EXPECT_FALSE(starts_in_reasoning(ReasoningFormat::kGptOss, PromptReasoning::kOpen));
  ReasoningParser p(ReasoningFormat::kGptOss, false);
  p.feed("<|channel|>analysis<|mess");
  EXPECT_FALSE(p.saw_reasoning());
  const auto d = p.feed("age|>hm");
  EXPECT_TRUE(p.saw_reasoning());
  EXPECT_EQ(d.reasoning, "hm");
}

TEST(ReasoningParser, Qwen3) {
  const auto q = ReasoningFormat::kQwen3;
  expect_split(q, false, "<think>\nLet me see.\n</think>\n\nIt is 4.", "\nLet me see.\n",
               "\n\nIt is 4.");
  expect_split(q, false, "It is 4.", "", "It is 4.");
  expect_split(q, false, "It is 4 <think>not reasoning</think>", "",
               "It is 4 <think>not reasoning</think>");
  expect_split(q, false, "<thin", "", "<thin");
  // The template opened <think>: the output starts inside.
  expect_split(q, true, "hmm</think>ok", "hmm", "ok");
  // Never closed: all reasoning.
  expect_split(q, false, "<think>still thinking </thi", "still thinking </thi", "");
}

TEST(ReasoningParser, DeepSeekR1) {
  const auto r = ReasoningFormat::kDeepSeekR1;
  expect_split(r, true, "First, add.</think>The sum is 4.", "First, add.", "The sum is 4.");
  expect_split(r, true, "<think>\nFirst.</think>4", "\nFirst.", "4");
  expect_split(r, true, "no end tag at all", "no end tag at all", "");
  expect_split(r, false, "4", "", "4");
}

TEST(ReasoningParser, RandomTextsStreamLikeTheySplit) {
  const std::vector<std::string> pieces = {"<think>", "</think>", "<thi", "nk>", "</",   "a",
                                           " ",       "\n",       "<",    ">",   "think"};
  std::mt19937 rng(3);
  for (auto f : {ReasoningFormat::kQwen3, ReasoningFormat::kDeepSeekR1}) {
    for (bool inside : {false, true}) {
      for (int n = 0; n < 500; ++n) {
        std::string text;
        const int len = int(rng() % 16);
        for (int i = 0; i < len; ++i) text += pieces[rng() % pieces.size()];
        const auto whole = split(f, inside, text, 0);
        EXPECT_EQ(whole.reasoning.size() + whole.content.size() <= text.size(), true);
        for (size_t step : {1, 2, 3}) {
          const auto d = split(f, inside, text, step);
          ASSERT_EQ(d.reasoning, whole.reasoning) << text << " step " << step;
          ASSERT_EQ(d.content, whole.content) << text << " step " << step;
        }
      }
    }
  }
}

TEST(ReasoningParser, PromptState) {
  EXPECT_EQ(prompt_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"),
            PromptReasoning::kClosed);
  EXPECT_EQ(prompt_reasoning("<|Assistant|><think>\n"), PromptReasoning::kOpen);
  EXPECT_EQ(prompt_reasoning("<|im_start|>assistant\n"), PromptReasoning::kNone);
  EXPECT_TRUE(starts_in_reasoning(ReasoningFormat::kDeepSeekR1, PromptReasoning::kNone));
  EXPECT_FALSE(starts_in_reasoning(ReasoningFormat::kDeepSeekR1, PromptReasoning::kClosed));
  EXPECT_FALSE(starts_in_reasoning(ReasoningFormat::kQwen3, PromptReasoning::kNone));
  EXPECT_TRUE(starts_in_reasoning(ReasoningFormat::kQwen3, PromptReasoning::kOpen));
  EXPECT_EQ(reasoning_parser_from_name("qwen3"), ReasoningFormat::kQwen3);
  EXPECT_EQ(reasoning_parser_from_name("deepseek_r1"), ReasoningFormat::kDeepSeekR1);
  EXPECT_FALSE(reasoning_parser_from_name("granite"));
}

// ---- both, chained ----------------------------------------------------------------------------

TEST(ChatOutputParser, ReasoningThenToolCalls) {
  ChatOutputOptions o;
  o.reasoning = ReasoningFormat::kQwen3;
  o.tools = ToolCallFormat::kHermes;
  const std::string text =
      "<think>\nI should call it.\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": "
      "{\"a\": 1}}\n</tool_call>";
  for (size_t step : {1, 4, 1000}) {
    ChatOutputParser p(o);
    ChatDelta all;
    std::string args;
    for (size_t i = 0; i < text.size(); i += step) {
      ChatDelta d = p.feed(text.substr(i, step));
      all.reasoning += d.reasoning;
      all.content += d.content;
      for (auto& c : d.calls) args += c.arguments;
    }
    ChatDelta f = p.finish();
    all.content += f.content;
    for (auto& c : f.calls) args += c.arguments;
    EXPECT_EQ(all.reasoning, "\nI should call it.\n");
    EXPECT_EQ(all.content, "") << "whitespace before the first call is not content";
    EXPECT_EQ(args, "{\"a\": 1}");
    ASSERT_EQ(p.calls().size(), 1u);
    EXPECT_EQ(p.calls()[0].name, "f");
    EXPECT_EQ(p.reasoning(), "\nI should call it.\n");
  }
}

TEST(ChatOutputParser, SingleCallKeepsTheFirst) {
  ChatOutputOptions o;
  o.tools = ToolCallFormat::kHermes;
  o.single_call = true;
  ChatOutputParser p(o);
  ChatDelta d = p.feed(
      "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"b\", "
      "\"arguments\": {}}</tool_call>");
  ChatDelta f = p.finish();
  for (auto& c : f.calls) d.calls.push_back(c);
  for (const auto& c : d.calls) EXPECT_EQ(c.index, 0u);
  ASSERT_EQ(p.calls().size(), 1u);
  EXPECT_EQ(p.calls()[0].name, "a");
}

}  // namespace
}  // namespace inferd::server
