// The reasoning and tool-call parsers chained for one chat choice.
#include "server/chat_output.h"

namespace inferd::server {

ChatOutputParser::ChatOutputParser(const ChatOutputOptions& o) : single_call_(o.single_call) {
  if (o.reasoning) reasoning_.emplace(*o.reasoning, o.starts_in_reasoning);
  if (o.tools) tools_.emplace(*o.tools, o.function_name);
}

void ChatOutputParser::through_tools(ChatDelta& out, std::string_view content, bool final) {
  if (!tools_) {
    out.content.append(content);
    content_.append(content);
    return;
  }
  ToolParseDelta d = content.empty() ? ToolParseDelta{} : tools_->feed(content);
  if (final) {
    ToolParseDelta f = tools_->finish();
    d.content += f.content;
    for (auto& c : f.calls) d.calls.push_back(std::move(c));
  }
  out.content += d.content;
  for (auto& c : d.calls)
    if (!single_call_ || c.index == 0) out.calls.push_back(std::move(c));
}

ChatDelta ChatOutputParser::feed(std::string_view text) {
  ChatDelta out;
  if (!reasoning_) {
    through_tools(out, text, false);
    return out;
  }
  ReasoningDelta r = reasoning_->feed(text);
  out.reasoning = std::move(r.reasoning);
  through_tools(out, r.content, false);
  return out;
}

ChatDelta ChatOutputParser::finish() {
  ChatDelta out;
  if (!reasoning_) {
    through_tools(out, {}, true);
  } else {
    ReasoningDelta r = reasoning_->finish();
    out.reasoning = std::move(r.reasoning);
    through_tools(out, r.content, true);
  }
  if (tools_) {
    calls_ = tools_->calls();
    if (single_call_ && calls_.size() > 1) calls_.resize(1);
  }
  return out;
}

const std::string& ChatOutputParser::reasoning() const {
  static const std::string kEmpty;
  return reasoning_ ? reasoning_->reasoning() : kEmpty;
}

const std::string& ChatOutputParser::content() const {
  return tools_ ? tools_->content() : content_;
}

const std::vector<ToolCall>& ChatOutputParser::calls() const {
  return calls_;
}

}  // namespace inferd::server
