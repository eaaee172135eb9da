// The renderer seam: a GenerationJob (generation_job.h) runs a request on the engine and gathers
// what it produced; a Renderer turns that into the answer one API promises. OpenAI chat
// (render/openai_chat.h) and OpenAI completions (render/openai_completions.h) are renderers; the
// Anthropic Messages API and the OpenAI Responses API are meant to be one more each, with no change
// to the job.
//
// What a renderer sees (`Generation`, read-only, owned by the job): the parsed request, the
// response id and creation time, per prompt its token ids, cached tokens and prompt logprobs, per
// choice everything gathered so far (raw text, parsed reasoning / content / tool calls, token ids,
// logprobs, finish and stop reason), and the usage totals.
//
// Call order. A renderer is made per request, before the job starts, and is called on the
// connection's strand only (never two calls at once):
//   Streaming request (CompletionRequest::stream):
//     begin()                       once: the HTTP stream (200, text/event-stream) is open
//     delta()                       zero or more times: one choice's new output, in engine order
//                                   (choices interleave); a choice's last delta has `finish` set
//     then exactly one of
//       end()                       every choice finished: write usage and the terminator, then
//                                   RenderSink::end_stream()
//       fail()                      the request failed after begin() (timeout, engine error,
//                                   drain): write the error event(s), then end_stream()
//   Plain request:
//     full()                        every choice finished (parsed totals complete): send the body
//                                   with RenderSink::send_json
//     or fail()                     the request failed: send the error with a status
// Nothing is called once the client has gone. A request refused before it runs (validation, rate
// limit, queue full) never reaches the renderer: the route answers it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inferd/engine.h"
#include "server/api_error.h"
#include "server/chat_output.h"
#include "server/generator.h"
#include "server/protocol.h"

namespace inferd::server {

// Token counts of the whole request (every prompt, every choice).
struct Usage {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens found in the prefix cache
  int64_t completion_tokens = 0;
};

// One prompt's engine request.
struct PromptOutput {
  std::span<const int32_t> token_ids;  // the prompt (CompletionRequest::prompts[k])
  int32_t num_tokens = 0;              // as the engine counted them
  int32_t cached_tokens = 0;
  // SamplingParams::prompt_logprobs: entry i belongs to prompt token i + 1 (RequestOutput's).
  std::vector<SampleLogprobs> prompt_logprobs;
};

// One choice as gathered so far. Choice i answers prompt i / n.
struct ChoiceOutput {
  size_t prompt_index = 0;
  std::string text;                      // the generated text so far, unparsed
  std::vector<int32_t> token_ids;        // generated tokens so far
  std::vector<SampleLogprobs> logprobs;  // one per token when CompletionRequest::logprobs
  std::optional<FinishReason> finish;    // set once the choice finished
  // What ended it: the stop string (a JSON string), the stop token id (a number), else null.
  ojson stop_reason = nullptr;
  // Chat with output parsing (CompletionRequest::output active): the parsed totals. In a stream
  // they grow delta by delta; in a plain request they are complete when full() runs. Null when
  // the output is not parsed (then `text` is all content).
  const ChatOutputParser* parsed = nullptr;

  int32_t num_tokens() const { return int32_t(token_ids.size()); }
};

// One choice's new output, handed to Renderer::delta.
struct ChoiceDelta {
  size_t index = 0;       // the choice
  std::string_view text;  // the new raw text
  // The new text through the choice's parsers (chat with output parsing). Without parsing,
  // `content` is `text` and the rest is empty.
  std::string_view reasoning;
  std::string_view content;
  std::span<const ToolCallDelta> calls;  // tool-call pieces (index, id and name first, arguments)
  std::span<const int32_t> token_ids;    // the new tokens
  std::span<const SampleLogprobs> logprobs;  // theirs; empty unless CompletionRequest::logprobs
  std::optional<FinishReason> finish;        // set on the choice's last delta
};

// What the job gathered (read-only to renderers).
struct Generation {
  const CompletionRequest& request;
  const Generator& generator;  // token_text() for logprobs
  std::string id;              // the response id (also X-Request-Id)
  int64_t created = 0;         // Unix seconds
  std::vector<PromptOutput> prompts;
  std::vector<ChoiceOutput> choices;

  Usage usage() const;
};

// Where a renderer writes. A stream is already open when begin() runs.
class RenderSink {
 public:
  virtual ~RenderSink() = default;
  // One server-sent event: "event: <name>\n" when `name` is given, then "data: <data>\n\n".
  virtual void event(std::string_view data, std::string_view name = {}) = 0;
  // Ends the stream (after the last event).
  virtual void end_stream() = 0;
  // A plain request's answer: `body` as application/json with `status`.
  virtual void send_json(int status, std::string body) = 0;
  // A plain request's answer: `e` in OpenAI's error shape, with its status and headers
  // (Retry-After, WWW-Authenticate).
  virtual void send_error(const ApiError& e) = 0;
};

class Renderer {
 public:
  virtual ~Renderer() = default;

  // Streaming (see the call order above).
  virtual void begin(const Generation& g, RenderSink& out) = 0;
  virtual void delta(const Generation& g, const ChoiceDelta& d, RenderSink& out) = 0;
  virtual void end(const Generation& g, RenderSink& out) = 0;
  // A plain request.
  virtual void full(const Generation& g, RenderSink& out) = 0;
  // The request failed; `streaming` says whether begin() ran. The default is OpenAI's: in a
  // stream a data event holding the error JSON, then "data: [DONE]"; else the error response.
  virtual void fail(const Generation& g, const ApiError& e, bool streaming, RenderSink& out);
};

}  // namespace inferd::server
