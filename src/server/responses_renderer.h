// The answer of a /v1/responses request: the response object (id "resp_...", status, output items
// — reasoning, message with output_text, function_call — usage) and, when streaming, the
// Responses API's events (response.created, response.in_progress, response.output_item.added,
// response.content_part.added, response.output_text.delta, response.reasoning_text.delta,
// response.function_call_arguments.delta, their .done events, response.completed or
// response.incomplete; response.failed and an error event on failure), each with its
// sequence_number. The generated text goes through the same reasoning and tool-call parsers as
// chat (ChatOutputParser). A finished response is stored when the request asked for it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "inferd/engine.h"
#include "server/api_error.h"
#include "server/chat_output.h"
#include "server/generator.h"
#include "server/responses_request.h"
#include "server/responses_store.h"

namespace inferd::server {

// Token counts of a finished (or failed) generation.
struct ResponsesUsage {
  int64_t input_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t output_tokens = 0;
};

class ResponsesRenderer {
 public:
  // `req` is the parsed request (its echo, store flag, conversation and chat output options are
  // kept); `id` the response's id ("resp_..."); `gen` counts reasoning tokens.
  ResponsesRenderer(std::string id, const ResponsesRequest& req, const Generator& gen,
                    ResponsesStore& store);

  const std::string& id() const { return id_; }

  // Streaming: each returns the SSE text of the events it makes ("event: ...\ndata: ...\n\n").
  std::string begin();                       // response.created, response.in_progress
  std::string text(std::string_view delta);  // the events of the next piece of generated text
  // The end: closes the open items, response.completed (or response.incomplete when `finish` is
  // length), stores the response when asked.
  std::string finish(FinishReason finish, const ResponsesUsage& usage);
  // A failure after the stream began: an error event and response.failed.
  std::string fail(const ApiError& e, const ResponsesUsage& usage);

  // Not streaming: the whole text at once, the response object's JSON text (stored when asked).
  std::string full(const std::string& text, FinishReason finish, const ResponsesUsage& usage);

 private:
  enum class Kind { kNone, kReasoning, kMessage, kCall };
  ojson object(const char* status, const ojson& usage) const;
  ojson usage_json(const ResponsesUsage& u) const;
  void feed(const ChatDelta& d);
  void open(Kind kind, const ToolCallDelta* call = nullptr);
  void close(const char* status);
  void event(const char* type, ojson fields);
  std::string done(FinishReason finish, const ResponsesUsage& usage);
  std::string take();

  std::string id_;
  ojson echo_;
  std::string model_;
  bool store_;
  ojson input_items_;
  const Generator& gen_;
  ResponsesStore& store_ref_;
  ChatOutputParser parser_;
  int64_t created_at_;
  bool streaming_ = false;
  int64_t seq_ = 0;
  std::string out_;                // events not yet returned
  ojson output_ = ojson::array();  // finished items, then the open one
  Kind open_ = Kind::kNone;
  std::string text_;  // the open item's text (message, reasoning) or arguments (call)
};

}  // namespace inferd::server
