// /v1/responses' answer (the OpenAI Responses API): the response object (id "resp_...", status
// completed / incomplete, output items — reasoning with reasoning_text, message with output_text,
// function_call — usage with cached and reasoning tokens) and, when streaming, the Responses events
// with their sequence_number: response.created, response.in_progress, then per output item
// response.output_item.added, response.content_part.added, response.output_text.delta /
// response.reasoning_text.delta / response.function_call_arguments.delta, their .done events and
// response.output_item.done, and last response.completed (or response.incomplete when
// max_output_tokens cut it). A failure after the stream began is an error event then
// response.failed. The reasoning / content / tool-call split is the job's chat output parsers'
// (the same as /v1/chat/completions). A finished response is stored when the request asked.
#pragma once

#include <cstdint>
#include <string>

#include "server/render/renderer.h"
#include "server/responses_request.h"
#include "server/responses_store.h"

namespace inferd::server {

class OpenAiResponsesRenderer final : public Renderer {
 public:
  // `req`: the parsed request (its echo, store flag and conversation are kept; its chat request
  // runs in the job). `store` outlives the request (the server's).
  OpenAiResponsesRenderer(const ResponsesRequest& req, ResponsesStore& store);

  void begin(const Generation& g, RenderSink& out) override;
  void delta(const Generation& g, const ChoiceDelta& d, RenderSink& out) override;
  void end(const Generation& g, RenderSink& out) override;
  void full(const Generation& g, RenderSink& out) override;
  void fail(const Generation& g, const ApiError& e, bool streaming, RenderSink& out) override;

 private:
  enum class Kind { kNone, kReasoning, kMessage, kCall };
  struct Pieces {  // one delta's text, split
    std::string_view reasoning;
    std::string_view content;
    std::span<const ToolCallDelta> calls;
  };
  ojson object(const Generation& g, const char* status) const;
  ojson usage_json(const Generation& g) const;
  void feed(const Pieces& p);
  void append(Kind kind, std::string_view s, const char* type);
  void open(Kind kind, const ToolCallDelta* call = nullptr);
  void close(const char* status);
  void event(const char* type, ojson fields);
  ojson finished(const Generation& g);

  ojson echo_;
  bool store_;
  ojson input_items_;
  ResponsesStore& store_ref_;
  RenderSink* out_ = nullptr;  // streaming: where events go (null: no events)
  int64_t seq_ = 0;
  ojson output_ = ojson::array();  // finished items, then the open one
  Kind open_ = Kind::kNone;
  std::string text_;  // the open item's text (message, reasoning) or arguments (call)
};

}  // namespace inferd::server
