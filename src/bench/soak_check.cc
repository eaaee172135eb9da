// `inferd bench soak`'s answer checks (see soak_check.h).
#include "bench/soak_check.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <regex>
#include <vector>

#include "bench/sse.h"

namespace inferd::bench {

namespace {

using json = nlohmann::json;

std::string cut(std::string_view s, size_t n = 200) {
  std::string out(s.substr(0, n));
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return s.size() > n ? out + "..." : out;
}

struct ToolCall {
  std::string name;
  std::string arguments;
};

// One choice as the answer gave it (a stream's deltas joined).
struct Choice {
  std::string text;
  std::string finish;  // empty: none seen
  int32_t finishes = 0;
  int64_t logprob_tokens = 0;
  int32_t max_top = 0;  // the most top_logprobs entries of one token
  std::map<int64_t, ToolCall> tools;
};

bool str_field(const json& o, const char* key, std::string& out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out += it->get_ref<const std::string&>();
  return true;
}

// Counts the tokens in a choice's `logprobs` (completions: tokens; chat: content).
std::string read_logprobs(const SoakRequest& r, const json& ch, Choice& c) {
  auto it = ch.find("logprobs");
  if (it == ch.end() || it->is_null()) return "";
  if (r.logprobs < 0) return "logprobs given though not asked";
  if (!it->is_object()) return "logprobs is not an object";
  if (r.chat) {
    auto content = it->find("content");
    if (content == it->end() || content->is_null()) return "";
    if (!content->is_array()) return "logprobs.content is not an array";
    for (const json& t : *content) {
      if (!t.is_object() || !t.contains("logprob") || !t.contains("top_logprobs") ||
          !t["top_logprobs"].is_array())
        return "a logprobs.content entry without logprob / top_logprobs";
      c.max_top = std::max(c.max_top, int32_t(t["top_logprobs"].size()));
      ++c.logprob_tokens;
    }
    return "";
  }
  auto tokens = it->find("tokens");
  auto top = it->find("top_logprobs");
  if (tokens == it->end() || !tokens->is_array() || top == it->end() || !top->is_array() ||
      tokens->size() != top->size())
    return "logprobs.tokens and logprobs.top_logprobs are not arrays of one length";
  for (const json& t : *top)
    if (t.is_object()) c.max_top = std::max(c.max_top, int32_t(t.size()));
  c.logprob_tokens += int64_t(tokens->size());
  return "";
}

// A choice object of a body (delta: a stream's chunk) added into `c`.
std::string read_choice(const SoakRequest& r, const json& ch, bool stream, Choice& c) {
  if (r.chat) {
    const char* key = stream ? "delta" : "message";
    auto m = ch.find(key);
    if (m == ch.end() || !m->is_object()) return fmt::format("a choice without '{}'", key);
    if (!str_field(*m, "content", c.text)) return "content is not a string";
    if (auto tc = m->find("tool_calls"); tc != m->end() && !tc->is_null()) {
      if (!tc->is_array()) return "tool_calls is not an array";
      int64_t k = 0;
      for (const json& call : *tc) {
        const int64_t idx = stream ? call.value("index", int64_t(-1)) : k++;
        if (idx < 0) return "a streamed tool call without index";
        ToolCall& t = c.tools[idx];
        auto f = call.find("function");
        if (f == call.end() || !f->is_object()) return "a tool call without function";
        if (!str_field(*f, "name", t.name) || !str_field(*f, "arguments", t.arguments))
          return "a tool call's name or arguments is not a string";
      }
    }
  } else if (!str_field(ch, "text", c.text)) {
    return "text is not a string";
  }
  if (std::string e = read_logprobs(r, ch, c); !e.empty()) return e;
  if (auto f = ch.find("finish_reason"); f != ch.end() && !f->is_null()) {
    if (!f->is_string()) return "finish_reason is not a string";
    c.finish = f->get<std::string>();
    ++c.finishes;
  }
  return "";
}

// What a finished choice's text must be, given the request's constraint.
std::string check_constraint(const SoakRequest& r, const Choice& c) {
  if (c.finish == "length") return "";  // cut short: nothing to hold
  switch (r.constraint) {
    case SoakConstraint::kNone:
      return "";
    case SoakConstraint::kChoice:
      if (std::find(r.choices.begin(), r.choices.end(), c.text) == r.choices.end())
        return fmt::format("choice constraint: '{}' is not one of the choices", cut(c.text));
      return "";
    case SoakConstraint::kRegex:
      if (!std::regex_match(c.text, std::regex(r.regex)))
        return fmt::format("regex constraint: '{}' does not match", cut(c.text));
      return "";
    case SoakConstraint::kJsonObject:
    case SoakConstraint::kJsonSchema: {
      const json j = json::parse(c.text, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return fmt::format("JSON constraint: '{}' is not a JSON object", cut(c.text));
      for (const std::string& k : r.required_keys)
        if (!j.contains(k)) return fmt::format("JSON schema: '{}' lacks '{}'", cut(c.text), k);
      if (!r.required_keys.empty() && j.size() != r.required_keys.size())
        return fmt::format("JSON schema: '{}' has other keys", cut(c.text));
      return "";
    }
    case SoakConstraint::kToolsRequired:
    case SoakConstraint::kToolNamed: {
      if (c.tools.empty()) return fmt::format("tool_choice: no tool call ({})", c.finish);
      for (const auto& [idx, t] : c.tools) {
        if (std::find(r.tool_names.begin(), r.tool_names.end(), t.name) == r.tool_names.end())
          return fmt::format("tool call of '{}', not an offered tool", cut(t.name));
        const json a = json::parse(t.arguments, nullptr, false);
        if (a.is_discarded() || !a.is_object())
          return fmt::format("tool call arguments '{}' are not a JSON object", cut(t.arguments));
      }
      return "";
    }
  }
  return "";
}

std::string check_usage(const SoakRequest& r, const json& u, SoakCheck& out) {
  if (!u.is_object()) return "usage is not an object";
  auto num = [&](const char* k) -> int64_t {
    auto it = u.find(k);
    return it != u.end() && it->is_number_integer() ? it->get<int64_t>() : -1;
  };
  const int64_t p = num("prompt_tokens"), c = num("completion_tokens"), t = num("total_tokens");
  if (p <= 0 || c < 0 || t < 0) return "usage lacks prompt / completion / total tokens";
  if (p + c != t) return fmt::format("usage: prompt {} + completion {} != total {}", p, c, t);
  if (c > int64_t(r.n) * r.max_tokens)
    return fmt::format("usage: {} completion tokens for n={} x max_tokens={}", c, r.n,
                       r.max_tokens);
  out.prompt_tokens = p;
  out.completion_tokens = c;
  return "";
}

// The choices as a whole: n of them, one finish reason each, constraints, logprob counts.
std::string check_choices(const SoakRequest& r, const std::map<int64_t, Choice>& choices,
                          SoakCheck& out, bool has_usage) {
  if (int64_t(choices.size()) != r.n || choices.begin()->first != 0 ||
      choices.rbegin()->first != r.n - 1)
    return fmt::format("{} choices (indexes {}..{}) for n={}", choices.size(),
                       choices.begin()->first, choices.rbegin()->first, r.n);
  const bool tools = !r.tool_names.empty();
  int64_t logprob_tokens = 0;
  for (const auto& [idx, c] : choices) {
    if (c.finishes != 1)
      return fmt::format("choice {}: {} finish reasons (expected one)", idx, c.finishes);
    if (c.finish != "stop" && c.finish != "length" && !(tools && c.finish == "tool_calls"))
      return fmt::format("choice {}: finish_reason '{}'", idx, c.finish);
    if (std::string e = check_constraint(r, c); !e.empty())
      return fmt::format("choice {}: {}", idx, e);
    if (r.logprobs >= 0 && c.max_top > r.logprobs + (r.chat ? 0 : 1))
      return fmt::format("choice {}: {} top logprobs for k={}", idx, c.max_top, r.logprobs);
    logprob_tokens += c.logprob_tokens;
    if (idx) out.text += '\x1f';
    out.text += c.text;
  }
  // Every generated token has its logprobs (stop strings may cut tokens from the text).
  const bool stops = r.body.find("\"stop\"") != std::string::npos;
  if (r.logprobs >= 0 && has_usage && !tools && !stops && logprob_tokens != out.completion_tokens)
    return fmt::format("{} tokens with logprobs, usage says {} completion tokens", logprob_tokens,
                       out.completion_tokens);
  return "";
}

SoakCheck check_body(const SoakRequest& r, const std::string& body) {
  SoakCheck out;
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    out.error = "the body is not a JSON object: " + cut(body);
    return out;
  }
  const char* object = r.chat ? "chat.completion" : "text_completion";
  if (j.value("object", "") != object) {
    out.error = fmt::format("object is not '{}': {}", object, cut(body));
    return out;
  }
  auto ch = j.find("choices");
  if (ch == j.end() || !ch->is_array() || ch->empty()) {
    out.error = "no choices: " + cut(body);
    return out;
  }
  if (!j.contains("usage")) {
    out.error = "no usage";
    return out;
  }
  if ((out.error = check_usage(r, j["usage"], out)).empty()) {
    std::map<int64_t, Choice> choices;
    for (const json& c : *ch) {
      const int64_t idx = c.is_object() ? c.value("index", int64_t(-1)) : -1;
      if (idx < 0 || choices.count(idx)) {
        out.error = "a choice without a unique index";
        return out;
      }
      if (!(out.error = read_choice(r, c, false, choices[idx])).empty()) return out;
    }
    out.error = check_choices(r, choices, out, true);
  }
  return out;
}

SoakCheck check_stream(const SoakRequest& r, const std::string& bytes) {
  SoakCheck out;
  std::map<int64_t, Choice> choices;
  bool done = false, usage = false;
  std::string err;
  auto on_event = [&](std::string_view, std::string_view data) {
    if (!err.empty()) return;
    if (done) {
      err = "data after [DONE]";
      return;
    }
    if (data == "[DONE]") {
      done = true;
      return;
    }
    const json j = json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      err = "a chunk is not a JSON object: " + cut(data);
      return;
    }
    if (j.contains("error")) {
      err = "an error event: " + cut(data);
      return;
    }
    if (auto u = j.find("usage"); u != j.end() && !u->is_null()) {
      if (!r.include_usage) {
        err = "usage in a stream that did not ask for it";
        return;
      }
      if (usage) {
        err = "two usage chunks";
        return;
      }
      usage = true;
      if (!(err = check_usage(r, *u, out)).empty()) return;
    }
    auto ch = j.find("choices");
    if (ch == j.end() || !ch->is_array()) {
      err = "a chunk without choices: " + cut(data);
      return;
    }
    for (const json& c : *ch) {
      const int64_t idx = c.is_object() ? c.value("index", int64_t(-1)) : -1;
      if (idx < 0 || idx >= r.n) {
        err = fmt::format("a choice index {} for n={}", idx, r.n);
        return;
      }
      Choice& k = choices[idx];
      if (k.finishes > 0) {
        err = fmt::format("choice {}: a chunk after its finish_reason", idx);
        return;
      }
      if (!(err = read_choice(r, c, true, k)).empty()) return;
    }
  };
  SseParser sse;
  sse.feed(bytes, on_event);
  sse.finish(on_event);
  if (err.empty() && !done) err = "the stream ended without data: [DONE]";
  if (err.empty() && r.include_usage && !usage) err = "no usage chunk though include_usage";
  if (err.empty() && choices.empty()) err = "no choices in the stream";
  if (err.empty()) err = check_choices(r, choices, out, usage);
  out.error = err;
  return out;
}

}  // namespace

SoakCheck check_soak_answer(const SoakRequest& r, const std::string& body) {
  return r.stream ? check_stream(r, body) : check_body(r, body);
}

std::string check_hostile_answer(const SoakRequest& r, int status, const std::string& body) {
  if (status < 400 || status >= 500)
    return fmt::format("hostile body ({}) answered {}, expected a 4xx: {}", r.hostile_what, status,
                       cut(body));
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("error") || !j["error"].is_object() ||
      !j["error"].contains("message"))
    return fmt::format("hostile body ({}): {} without OpenAI's error JSON: {}", r.hostile_what,
                       status, cut(body));
  return "";
}

}  // namespace inferd::bench
