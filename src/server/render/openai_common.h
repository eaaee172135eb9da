// What the OpenAI renderers (chat and completions) share: the chunk envelope (id, object, created,
// model), the usage object and its stream_options handling, the stream's end ("data: [DONE]"),
// and a logprob's JSON number.
#pragma once

#include <string>

#include "server/render/renderer.h"

namespace inferd::server {

// OpenAI's usage object: prompt_tokens, total_tokens, completion_tokens,
// prompt_tokens_details.cached_tokens.
ojson openai_usage(const Usage& u);
// A logprob as JSON: -inf (and NaN) become -9999.
double openai_logprob(float lp);
// A token as logprobs show it: its text, or "token_id:N" with return_tokens_as_token_ids.
std::string openai_token(const Generation& g, int32_t id);
// Token ids as a JSON array (return_token_ids).
ojson openai_token_ids(std::span<const int32_t> ids);

class OpenAiRenderer : public Renderer {
 public:
  // The usage chunk (stream_options.include_usage), then "data: [DONE]".
  void end(const Generation& g, RenderSink& out) override;

 protected:
  // "chat.completion.chunk" or "text_completion".
  virtual const char* chunk_object() const = 0;
  // {id, object, created, model}: a chunk's envelope, and the whole answer's.
  ojson chunk_base(const Generation& g, const char* object) const;
  // One chunk holding `choice`; usage added as stream_options asks (null, or the running totals
  // with continuous_usage_stats); then the members of `extra` (an object, or null).
  void write_chunk(const Generation& g, ojson choice, RenderSink& out, ojson extra = nullptr) const;
};

}  // namespace inferd::server
