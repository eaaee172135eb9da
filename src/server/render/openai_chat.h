// /v1/chat/completions' answer: a chat.completion body, or chat.completion.chunk events (the
// assistant role first, then reasoning_content / content / tool_calls deltas with their logprobs,
// finish_reason "tool_calls" when the model stopped after calling tools).
#pragma once

#include "server/render/openai_common.h"

namespace inferd::server {

class OpenAiChatRenderer final : public OpenAiRenderer {
 public:
  void begin(const Generation& g, RenderSink& out) override;
  void delta(const Generation& g, const ChoiceDelta& d, RenderSink& out) override;
  void full(const Generation& g, RenderSink& out) override;

 private:
  const char* chunk_object() const override { return "chat.completion.chunk"; }
};

}  // namespace inferd::server
