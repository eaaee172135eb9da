// One chat choice's output turned into the message OpenAI clients expect: the reasoning parser
// first (reasoning_content), then the tool-call parser on what remains (content and tool_calls).
// Used for plain responses (feed everything, finish) and for streams (the deltas of each piece).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/reasoning.h"
#include "server/tool_calls.h"

namespace inferd::server {

// How a chat request's output is parsed (decided from the request and the server's flags).
struct ChatOutputOptions {
  std::optional<ReasoningFormat> reasoning;  // --reasoning-parser
  bool starts_in_reasoning = false;          // the prompt left the model inside <think>
  std::optional<ToolCallFormat> tools;       // unset: no tool-call parsing
  std::string function_name;                 // ToolCallFormat::kArguments: the named function
  bool single_call = false;                  // keep only the first call (parallel_tool_calls false)

  bool active() const { return reasoning || tools; }
};

struct ChatDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCallDelta> calls;
  bool empty() const { return reasoning.empty() && content.empty() && calls.empty(); }
};

class ChatOutputParser {
 public:
  explicit ChatOutputParser(const ChatOutputOptions& options);

  ChatDelta feed(std::string_view text);
  ChatDelta finish();

  // Totals so far (complete after finish()).
  const std::string& reasoning() const;
  const std::string& content() const;
  const std::vector<ToolCall>& calls() const;
  bool has_reasoning() const { return reasoning_.has_value(); }

 private:
  void through_tools(ChatDelta& out, std::string_view content, bool final);

  bool single_call_;
  std::optional<ReasoningParser> reasoning_;
  std::optional<ToolCallParser> tools_;
  std::string content_;  // without a tool parser: the content
  std::vector<ToolCall> calls_;
};

}  // namespace inferd::server
