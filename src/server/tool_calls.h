// Tool-call parsers (vLLM's --tool-call-parser): the text a model writes for a tool call, in the
// format its chat template taught it, turned into OpenAI's `tool_calls` — all at once for a plain
// response, or as OpenAI's streamed tool-call deltas while the text arrives. Also the grammar that
// makes a model write calls in that format for tool_choice "required" or a named function.
//
// Formats (what the model writes):
//   hermes       <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>  (one or more; text
//                before, between and after is content) — Qwen2.5, Qwen3, Hermes
//   llama3_json  {"name": "f", "parameters": {...}}  (the whole output; several separated by ";";
//                an optional <|python_tag|> first) — Llama 3.1 / 3.2
//   mistral      [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]  (text before is content)
//   json_array   [{"name": "f", "parameters": {...}}, ...]  (vLLM's output for tool_choice
//                "required" when no parser is configured)
//   arguments    {...}  (vLLM's output for a named function when no parser is configured: the
//                whole output is that function's arguments)
// "arguments" and "parameters" are accepted in every JSON format. Output that does not parse as a
// call (tool_choice "auto": the model answered in words, or wrote broken JSON) is plain content.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace inferd::server {

enum class ToolCallFormat { kHermes, kLlama3Json, kMistral, kJsonArray, kArguments };

// The format of a --tool-call-parser name (hermes, llama3_json, mistral); nullopt when unknown.
std::optional<ToolCallFormat> tool_call_parser_from_name(std::string_view name);
// "hermes, llama3_json, mistral": for error messages.
const char* tool_call_parser_names();

struct ToolCall {
  std::string id;         // chatcmpl-tool-<32 hex digits>
  std::string name;       // the function's name
  std::string arguments;  // JSON text, as the model wrote it
};

// One streamed piece of a tool call. The first piece of a call has id and name set and empty
// arguments; later pieces have only arguments (the next fragment of its JSON text).
struct ToolCallDelta {
  size_t index = 0;
  std::string id;
  std::string name;
  std::string arguments;
};

struct ToolParseDelta {
  std::string content;               // text outside tool calls
  std::vector<ToolCallDelta> calls;  // tool-call pieces, in order
};

// Parses one sequence's output, incrementally: feed() each new piece of text and finish() at the
// end; the returned deltas concatenate to content() and calls(). Content is held back while it
// may still turn out to be the start of a call (a partial "<tool_call>"). A call is announced once
// its name is known and its arguments then stream as they arrive; a call whose text turns out
// malformed before it was announced is returned as content instead.
class ToolCallParser {
 public:
  // `function_name`: the function for ToolCallFormat::kArguments (the output is its arguments).
  explicit ToolCallParser(ToolCallFormat format, std::string function_name = {});

  ToolParseDelta feed(std::string_view text);
  ToolParseDelta finish();

  const std::string& content() const { return content_; }
  const std::vector<ToolCall>& calls() const { return calls_; }

 private:
  // kStart: before the first non-space (JSON formats); kContent: text, looking for a marker;
  // kCalls: reading calls; kAfterCalls / kPlain: the rest is content; kSkip: dropping a broken
  // call up to its closing marker; kDrop: dropping the rest.
  enum class Mode { kStart, kContent, kCalls, kAfterCalls, kPlain, kSkip, kDrop };
  struct Progress {  // the call being read
    bool announced = false;
    std::string id, name;
    std::string args;      // arguments returned so far
    size_t args_sent = 0;  // their length
  };
  void run(ToolParseDelta& out, bool final);
  bool step_content(ToolParseDelta& out, bool final);
  bool step_calls(ToolParseDelta& out, bool final);
  bool step_arguments(ToolParseDelta& out, bool final);
  bool step_separator(bool final, size_t i);
  bool open_mistral_array(ToolParseDelta& out, bool final, size_t i);
  bool step_call(ToolParseDelta& out, bool final, size_t i, size_t from);
  void emit_content(ToolParseDelta& out, size_t end);
  void fall_back_to_content(ToolParseDelta& out, size_t from);
  void announce(ToolParseDelta& out, const std::string& name);
  void send_args(ToolParseDelta& out, std::string_view args_so_far);
  void finish_call(ToolParseDelta& out, std::string_view args);

  ToolCallFormat format_;
  std::string function_name_;
  std::string buf_;          // all text fed
  size_t pos_ = 0;           // buf_ before pos_ is settled
  size_t region_start_ = 0;  // where the current run of calls began (its opening marker)
  size_t region_calls_ = 0;  // calls completed since region_start_
  Mode mode_ = Mode::kStart;
  bool in_array_ = false;  // inside the [...] of an array format
  bool need_sep_ = false;  // a call just ended: a separator, closer or closing marker is next
  bool finished_ = false;
  Progress cur_;  // the call being read (index calls_.size())
  std::string content_;
  std::vector<ToolCall> calls_;
};

// A fresh tool-call id: "chatcmpl-tool-" and 32 random hex digits.
std::string make_tool_call_id();

// A tool the request offers (already validated).
struct ToolSpec {
  std::string name;
  nlohmann::ordered_json parameters;  // a JSON Schema (an object), in the request's key order
  bool strict = false;
};

// GBNF (root rule `root`) that admits only calls in `format` to the given tools: one call when
// `single` (a named function, or parallel_tool_calls false), one or more otherwise. Each call's
// arguments follow its tool's parameters schema. kArguments takes exactly one tool. Throws
// grammar::GrammarError when a schema cannot be compiled. `mistral_marker`: kMistral's grammar
// starts with "[TOOL_CALLS]" as text (false: the caller makes the output start with the special
// token instead, StructuredOutputs::begin_tokens, and the grammar starts at "[").
std::string tool_call_grammar(ToolCallFormat format, const std::vector<ToolSpec>& tools,
                              bool single, bool mistral_marker = true);

}  // namespace inferd::server
