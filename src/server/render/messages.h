// The Anthropic Messages API's answer (/v1/messages): one message JSON with thinking / text /
// tool_use content blocks, stop_reason and usage, or Anthropic's named events (message_start,
// ping, content_block_start / _delta / _stop, message_delta, message_stop); a failure is
// Anthropic's error JSON (an `error` event in a stream). The blocks themselves: MessagesOutput
// (messages_output.h).
#pragma once

#include <optional>

#include "server/messages_output.h"
#include "server/render/renderer.h"

namespace inferd::server {

class MessagesRenderer final : public Renderer {
 public:
  void begin(const Generation& g, RenderSink& out) override;
  void delta(const Generation& g, const ChoiceDelta& d, RenderSink& out) override;
  void end(const Generation& g, RenderSink& out) override;
  void full(const Generation& g, RenderSink& out) override;
  void fail(const Generation& g, const ApiError& e, bool streaming, RenderSink& out) override;

 private:
  std::optional<MessagesOutput> stream_;
};

}  // namespace inferd::server
