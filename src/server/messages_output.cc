// MessagesOutput: one Messages answer, streamed or whole (see messages_output.h).
#include "server/messages_output.h"

#include <utility>

#include "server/messages_request.h"
#include "server/responses.h"

namespace inferd::server {

using ojson = nlohmann::ordered_json;

namespace {

SseEvent sse(const char* event, const ojson& data) {
  return {event, dump_json(data)};
}

bool only_whitespace(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

std::string messages_stop_reason(const MessagesFinish& f, bool tool_use) {
  if (f.reason == FinishReason::kLength) return "max_tokens";
  if (f.stop_sequence) return "stop_sequence";
  if (tool_use) return "tool_use";
  return "end_turn";
}

std::string tool_use_id(const std::string& call_id) {
  constexpr std::string_view kPrefix = "chatcmpl-tool-";
  if (std::string_view(call_id).starts_with(kPrefix))
    return "toolu_" + call_id.substr(kPrefix.size());
  return "toolu_" + call_id;
}

MessagesOutput::MessagesOutput(std::string id, std::string model)
    : id_(std::move(id)), model_(std::move(model)) {}

ojson MessagesOutput::usage_json(const MessagesUsage& u) {
  ojson j;
  j["input_tokens"] = u.prompt_tokens - u.cached_tokens;
  j["cache_read_input_tokens"] = u.cached_tokens;
  j["output_tokens"] = u.output_tokens;
  return j;
}

SseEvents MessagesOutput::start(const MessagesUsage& usage) {
  ojson msg;
  msg["id"] = id_;
  msg["type"] = "message";
  msg["role"] = "assistant";
  msg["model"] = model_;
  msg["content"] = ojson::array();
  msg["stop_reason"] = nullptr;
  msg["stop_sequence"] = nullptr;
  msg["usage"] = usage_json(usage);
  return {sse("message_start", {{"type", "message_start"}, {"message", std::move(msg)}}),
          sse("ping", {{"type", "ping"}})};
}

SseEvents MessagesOutput::feed(std::string_view reasoning, std::string_view content_text,
                               std::span<const ToolCallDelta> calls) {
  SseEvents events;
  if (!reasoning.empty()) {
    if (!open_ || blocks_.back().kind != Kind::kThinking)
      open({Kind::kThinking, {}, {}, {}}, events);
    blocks_.back().text += reasoning;
    events.push_back(sse("content_block_delta",
                         {{"type", "content_block_delta"},
                          {"index", blocks_.size() - 1},
                          {"delta", {{"type", "thinking_delta"}, {"thinking", reasoning}}}}));
  }
  if (!content_text.empty()) content(std::string(content_text), events);
  for (const auto& c : calls) {
    if (!c.id.empty()) {
      pending_.clear();  // whitespace between text and a call
      open({Kind::kToolUse, tool_use_id(c.id), c.name, {}}, events);
    }
    if (c.arguments.empty() || !open_ || blocks_.back().kind != Kind::kToolUse) continue;
    blocks_.back().text += c.arguments;
    events.push_back(
        sse("content_block_delta",
            {{"type", "content_block_delta"},
             {"index", blocks_.size() - 1},
             {"delta", {{"type", "input_json_delta"}, {"partial_json", c.arguments}}}}));
  }
  return events;
}

// Text opens a text block only once it holds more than whitespace (the blank lines a model writes
// between its reasoning and a tool call make no block of their own).
void MessagesOutput::content(const std::string& text, SseEvents& events) {
  std::string piece = text;
  if (!open_ || blocks_.back().kind != Kind::kText) {
    pending_ += text;
    if (only_whitespace(pending_)) return;
    open({Kind::kText, {}, {}, {}}, events);
    piece = std::move(pending_);
    pending_.clear();
  }
  blocks_.back().text += piece;
  events.push_back(
      sse("content_block_delta", {{"type", "content_block_delta"},
                                  {"index", blocks_.size() - 1},
                                  {"delta", {{"type", "text_delta"}, {"text", piece}}}}));
}

void MessagesOutput::open(Block b, SseEvents& events) {
  close(events);
  ojson start;
  switch (b.kind) {
    case Kind::kThinking:
      start = {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}};
      break;
    case Kind::kText:
      start = {{"type", "text"}, {"text", ""}};
      break;
    case Kind::kToolUse:
      start = {{"type", "tool_use"}, {"id", b.id}, {"name", b.name}, {"input", ojson::object()}};
      break;
  }
  blocks_.push_back(std::move(b));
  open_ = true;
  events.push_back(sse("content_block_start", {{"type", "content_block_start"},
                                               {"index", blocks_.size() - 1},
                                               {"content_block", std::move(start)}}));
}

void MessagesOutput::close(SseEvents& events) {
  if (!open_) return;
  open_ = false;
  events.push_back(
      sse("content_block_stop", {{"type", "content_block_stop"}, {"index", blocks_.size() - 1}}));
}

// Closes the last block; an answer of whitespace only is still a text block.
void MessagesOutput::end_blocks(SseEvents& events) {
  if (ended_) return;
  ended_ = true;
  if (!pending_.empty() && blocks_.empty()) {
    open({Kind::kText, {}, {}, {}}, events);
    content(std::exchange(pending_, std::string()), events);
  }
  pending_.clear();
  close(events);
}

std::string MessagesOutput::stop_reason(const MessagesFinish& f) const {
  bool tool_use = false;
  for (const auto& b : blocks_) tool_use |= b.kind == Kind::kToolUse;
  return messages_stop_reason(f, tool_use);
}

SseEvents MessagesOutput::finish(const MessagesFinish& f, const MessagesUsage& usage) {
  SseEvents events;
  end_blocks(events);
  ojson delta;
  delta["stop_reason"] = stop_reason(f);
  delta["stop_sequence"] = f.stop_sequence ? ojson(*f.stop_sequence) : ojson(nullptr);
  events.push_back(
      sse("message_delta",
          {{"type", "message_delta"}, {"delta", std::move(delta)}, {"usage", usage_json(usage)}}));
  events.push_back(sse("message_stop", {{"type", "message_stop"}}));
  return events;
}

SseEvent MessagesOutput::error_event(const ApiError& e) {
  return {"error", anthropic_error_body(e)};
}

// A tool_use block's input: the arguments parsed (an object with a grammar; what the model wrote
// otherwise, as text when it is not JSON).
ojson MessagesOutput::block_json(const Block& b) const {
  switch (b.kind) {
    case Kind::kThinking:
      return {{"type", "thinking"}, {"thinking", b.text}, {"signature", ""}};
    case Kind::kText:
      return {{"type", "text"}, {"text", b.text}};
    case Kind::kToolUse:
      break;
  }
  ojson input = ojson::object();
  if (!b.text.empty()) {
    try {
      input = ojson::parse(b.text);
    } catch (const std::exception&) {
      input = b.text;
    }
  }
  return {{"type", "tool_use"}, {"id", b.id}, {"name", b.name}, {"input", std::move(input)}};
}

ojson MessagesOutput::message(const MessagesFinish& f, const MessagesUsage& usage) {
  SseEvents ignored;
  end_blocks(ignored);
  ojson j;
  j["id"] = id_;
  j["type"] = "message";
  j["role"] = "assistant";
  j["model"] = model_;
  ojson content = ojson::array();
  for (const auto& b : blocks_) content.push_back(block_json(b));
  j["content"] = std::move(content);
  j["stop_reason"] = stop_reason(f);
  j["stop_sequence"] = f.stop_sequence ? ojson(*f.stop_sequence) : ojson(nullptr);
  j["usage"] = usage_json(usage);
  return j;
}

}  // namespace inferd::server

namespace inferd::server {

ojson messages_body(const std::string& id, const std::string& model, std::string_view reasoning,
                    std::string_view content, const std::vector<ToolCall>& calls,
                    const MessagesFinish& finish, const MessagesUsage& usage) {
  std::vector<ToolCallDelta> pieces;
  for (size_t i = 0; i < calls.size(); ++i)
    pieces.push_back({i, calls[i].id, calls[i].name, calls[i].arguments});
  MessagesOutput out(id, model);
  (void)out.feed(reasoning, content, pieces);
  return out.message(finish, usage);
}

}  // namespace inferd::server
