// One Anthropic Messages answer built from one choice's parsed output (reasoning, content and
// tool-call pieces, as the chat output parsers give them): content blocks (thinking, text,
// tool_use), the stop reason and usage; either Anthropic's server-sent events (message_start,
// ping, content_block_start / _delta / _stop, message_delta, message_stop; error) or, fed the
// totals at once, one message JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "inferd/engine.h"
#include "server/api_error.h"
#include "server/chat_output.h"

namespace inferd::server {

// Token counts of the answer. input_tokens excludes the prompt tokens read from the prefix cache
// (cache_read_input_tokens), as Anthropic counts them.
struct MessagesUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t output_tokens = 0;
};

// One server-sent event: "event: <name>" and its JSON data.
struct SseEvent {
  std::string name;
  std::string data;
};
using SseEvents = std::vector<SseEvent>;

// How the output ended.
struct MessagesFinish {
  FinishReason reason = FinishReason::kStop;
  std::optional<std::string> stop_sequence;  // the stop sequence that ended it
};

class MessagesOutput {
 public:
  // `id`: "msg_...".
  MessagesOutput(std::string id, std::string model);

  // ---- streaming: each returns the events to send ----
  // message_start (with the usage known so far) and a ping.
  SseEvents start(const MessagesUsage& usage);
  // The blocks the next piece of output opens, continues and closes.
  SseEvents feed(std::string_view reasoning, std::string_view content,
                 std::span<const ToolCallDelta> calls);
  // The rest: the last blocks, message_delta (stop_reason, usage), message_stop.
  SseEvents finish(const MessagesFinish& finish, const MessagesUsage& usage);
  // An error event (the stream then ends).
  static SseEvent error_event(const ApiError& e);

  // ---- the whole answer: after feed() of all of it (or none) ----
  nlohmann::ordered_json message(const MessagesFinish& finish, const MessagesUsage& usage);

 private:
  enum class Kind { kThinking, kText, kToolUse };
  struct Block {
    Kind kind;
    std::string id, name;  // tool_use
    std::string text;      // thinking, text, or the tool's input as JSON text
  };

  void content(const std::string& text, SseEvents& events);
  void open(Block b, SseEvents& events);
  void close(SseEvents& events);
  void end_blocks(SseEvents& events);
  std::string stop_reason(const MessagesFinish& f) const;
  nlohmann::ordered_json block_json(const Block& b) const;
  static nlohmann::ordered_json usage_json(const MessagesUsage& u);

  std::string id_, model_;
  std::vector<Block> blocks_;
  bool open_ = false;    // blocks_.back() is still open
  std::string pending_;  // whitespace-only text not yet in a text block
  bool ended_ = false;   // the last block was closed
};

// Anthropic's stop_reason: "end_turn", "max_tokens", "stop_sequence" or "tool_use".
std::string messages_stop_reason(const MessagesFinish& f, bool tool_use);

// The whole answer of a choice whose output was parsed into these totals.
nlohmann::ordered_json messages_body(const std::string& id, const std::string& model,
                                     std::string_view reasoning, std::string_view content,
                                     const std::vector<ToolCall>& calls,
                                     const MessagesFinish& finish, const MessagesUsage& usage);

// A tool_use id for a tool call id of the parser ("chatcmpl-tool-<hex>" -> "toolu_<hex>").
std::string tool_use_id(const std::string& call_id);

}  // namespace inferd::server
