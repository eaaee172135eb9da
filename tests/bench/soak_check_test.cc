// `bench soak`'s request generator and answer checks on hand-made answers: right ones pass, and
// each kind of wrong one (usage sums, choice counts, finish reasons, cut streams, constraints,
// tool calls, hostile bodies let through) is caught.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>

#include "bench/soak.h"
#include "bench/soak_check.h"
#include "bench/soak_request.h"

namespace inferd::bench {
namespace {

using json = nlohmann::json;

SoakRequest completion(int32_t n = 1, bool stream = false) {
  SoakRequest r;
  r.path = "/v1/completions";
  r.n = n;
  r.max_tokens = 8;
  r.stream = stream;
  r.include_usage = stream;
  return r;
}

std::string body(const std::vector<json>& choices, int64_t p, int64_t c, int64_t t) {
  return json{{"object", "text_completion"},
              {"choices", choices},
              {"usage", {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", t}}}}
      .dump();
}

json choice(int idx, const std::string& text, const char* finish = "length") {
  return {{"index", idx}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}};
}

std::string sse(const std::vector<json>& chunks, bool done = true) {
  std::string s;
  for (const json& c : chunks) s += "data: " + c.dump() + "\n\n";
  if (done) s += "data: [DONE]\n\n";
  return s;
}

TEST(SoakCheck, RightBodiesPass) {
  const SoakCheck ok =
      check_soak_answer(completion(2), body({choice(0, "a b"), choice(1, "c")}, 5, 9, 14));
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.text, std::string("a b\x1f") + "c");
  EXPECT_EQ(ok.prompt_tokens, 5);
  EXPECT_EQ(ok.completion_tokens, 9);
}

TEST(SoakCheck, WrongBodiesFail) {
  const SoakRequest r = completion(2);
  // prompt + completion != total
  EXPECT_NE(check_soak_answer(r, body({choice(0, "a"), choice(1, "b")}, 5, 9, 15)).error, "");
  // more completion tokens than n x max_tokens
  EXPECT_NE(check_soak_answer(r, body({choice(0, "a"), choice(1, "b")}, 5, 17, 22)).error, "");
  // one choice for n = 2; a repeated index
  EXPECT_NE(check_soak_answer(r, body({choice(0, "a")}, 5, 4, 9)).error, "");
  EXPECT_NE(check_soak_answer(r, body({choice(0, "a"), choice(0, "b")}, 5, 4, 9)).error, "");
  // an unknown finish reason; not JSON; the other route's object
  EXPECT_NE(check_soak_answer(r, body({choice(0, "a"), choice(1, "b", "abort")}, 5, 4, 9)).error,
            "");
  EXPECT_NE(check_soak_answer(r, "{\"object\": ").error, "");
  SoakRequest chat = r;
  chat.chat = true;
  EXPECT_NE(check_soak_answer(chat, body({choice(0, "a"), choice(1, "b")}, 5, 4, 9)).error, "");
}

TEST(SoakCheck, ConstraintsHold) {
  SoakRequest r = completion();
  r.constraint = SoakConstraint::kChoice;
  r.choices = {"yes", "no"};
  EXPECT_EQ(check_soak_answer(r, body({choice(0, "no", "stop")}, 5, 1, 6)).error, "");
  EXPECT_NE(check_soak_answer(r, body({choice(0, "nope", "stop")}, 5, 1, 6)).error, "");
  // A text cut by max_tokens need not hold.
  EXPECT_EQ(check_soak_answer(r, body({choice(0, "n", "length")}, 5, 1, 6)).error, "");
  r.constraint = SoakConstraint::kJsonSchema;
  r.required_keys = {"name", "age"};
  EXPECT_EQ(
      check_soak_answer(r, body({choice(0, R"({"name":"a","age":3})", "stop")}, 5, 8, 13)).error,
      "");
  EXPECT_NE(check_soak_answer(r, body({choice(0, R"({"name":"a"})", "stop")}, 5, 8, 13)).error, "");
  r.constraint = SoakConstraint::kRegex;
  r.regex = "[a-z]{1,6}";
  EXPECT_EQ(check_soak_answer(r, body({choice(0, "abc", "stop")}, 5, 1, 6)).error, "");
  EXPECT_NE(check_soak_answer(r, body({choice(0, "ab1", "stop")}, 5, 1, 6)).error, "");
}

TEST(SoakCheck, ToolCallsHold) {
  SoakRequest r = completion();
  r.chat = true;
  r.path = "/v1/chat/completions";
  r.constraint = SoakConstraint::kToolNamed;
  r.tool_names = {"add"};
  auto answer = [](const std::string& name, const std::string& args) {
    const json msg = {{"role", "assistant"},
                      {"content", nullptr},
                      {"tool_calls",
                       {{{"id", "x"},
                         {"type", "function"},
                         {"function", {{"name", name}, {"arguments", args}}}}}}};
    return json{{"object", "chat.completion"},
                {"choices", {{{"index", 0}, {"message", msg}, {"finish_reason", "tool_calls"}}}},
                {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 6}, {"total_tokens", 11}}}}
        .dump();
  };
  EXPECT_EQ(check_soak_answer(r, answer("add", R"({"a":1,"b":2})")).error, "");
  EXPECT_NE(check_soak_answer(r, answer("sub", R"({"a":1,"b":2})")).error, "");
  EXPECT_NE(check_soak_answer(r, answer("add", R"({"a":1,)")).error, "");
}

TEST(SoakCheck, Streams) {
  SoakRequest r = completion(1, true);
  const json c1 = {{"choices", {{{"index", 0}, {"text", "a"}, {"finish_reason", nullptr}}}}};
  const json c2 = {{"choices", {choice(0, " b")}}};
  const json usage = {
      {"choices", json::array()},
      {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 2}, {"total_tokens", 5}}}};
  const SoakCheck ok = check_soak_answer(r, sse({c1, c2, usage}));
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.text, "a b");
  // no [DONE]; no usage though asked; two finish reasons; a chunk after the finish; a wrong sum
  EXPECT_NE(check_soak_answer(r, sse({c1, c2, usage}, false)).error.find("[DONE]"),
            std::string::npos);
  EXPECT_NE(check_soak_answer(r, sse({c1, c2})).error, "");
  EXPECT_NE(check_soak_answer(r, sse({c1, c2, c2, usage})).error, "");
  json bad = usage;
  bad["usage"]["total_tokens"] = 6;
  EXPECT_NE(check_soak_answer(r, sse({c1, c2, bad})).error, "");
  // usage where it was not asked
  r.include_usage = false;
  EXPECT_NE(check_soak_answer(r, sse({c1, c2, usage})).error, "");
  EXPECT_EQ(check_soak_answer(r, sse({c1, c2})).error, "");
}

TEST(SoakCheck, HostileAnswers) {
  const SoakRequest r = make_hostile_request(6, "m");
  const std::string err = R"({"error":{"message":"no such model","type":"x"}})";
  EXPECT_EQ(check_hostile_answer(r, 404, err), "");
  EXPECT_NE(check_hostile_answer(r, 200, "{}"), "");
  EXPECT_NE(check_hostile_answer(r, 500, err), "");
  EXPECT_NE(check_hostile_answer(r, 400, "bad"), "");
}

TEST(SoakRequests, SeededAndCoverTheMix) {
  SoakMix mix;
  std::set<std::string> hostile;
  std::set<SoakKind> kinds;
  std::set<std::string> fields;
  int chat = 0, stream = 0;
  for (uint64_t i = 0; i < 3000; ++i) {
    const SoakRequest r = make_soak_request(11, i, "m", mix);
    EXPECT_EQ(r.body, make_soak_request(11, i, "m", mix).body);
    kinds.insert(r.kind);
    chat += r.chat;
    stream += r.stream;
    if (r.kind == SoakKind::kHostile) {
      hostile.insert(r.hostile_what);
      continue;
    }
    const json b = json::parse(r.body);
    for (const auto& [k, v] : b.items()) fields.insert(k);
  }
  EXPECT_EQ(kinds.size(), 5u);
  EXPECT_GT(hostile.size(), 20u);
  EXPECT_GT(chat, 1200);
  EXPECT_GT(stream, 1200);
  for (const char* f : {"temperature",
                        "top_p",
                        "top_k",
                        "min_p",
                        "presence_penalty",
                        "frequency_penalty",
                        "repetition_penalty",
                        "logit_bias",
                        "seed",
                        "n",
                        "stop",
                        "stop_token_ids",
                        "logprobs",
                        "top_logprobs",
                        "response_format",
                        "structured_outputs",
                        "tools",
                        "tool_choice",
                        "stream_options",
                        "ignore_eos",
                        "min_tokens",
                        "include_stop_str_in_output"})
    EXPECT_TRUE(fields.count(f)) << f;
  // The probes are fixed requests.
  EXPECT_EQ(make_probe_request(11, 3, "m", mix).body, make_probe_request(11, 3, "m", mix).body);
  EXPECT_NE(make_probe_request(11, 3, "m", mix).body, make_probe_request(11, 4, "m", mix).body);
}

TEST(SoakReport, PrometheusValues) {
  const std::string page =
      "# HELP x\nvllm:num_requests_running{model_name=\"m\"} 2.0\nprocess_resident_memory_bytes "
      "1.5e+08\n";
  EXPECT_EQ(prometheus_value(page, "vllm:num_requests_running"), 2.0);
  EXPECT_EQ(prometheus_value(page, "process_resident_memory_bytes"), 1.5e8);
  EXPECT_FALSE(prometheus_value(page, "vllm:num_requests_waiting"));
}

}  // namespace
}  // namespace inferd::bench
