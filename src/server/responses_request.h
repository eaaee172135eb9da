// The Responses API's request (POST /v1/responses): its body checked and converted into the chat
// request it runs as, so that it goes through the same chat template, tools, tool-call parser,
// reasoning parser and structured outputs as /v1/chat/completions. `input` items become chat
// messages (instructions first, as a system message; a previous response's conversation before
// them), tools and tool_choice take the chat shapes, `text.format` becomes response_format,
// `max_output_tokens` max_tokens, `reasoning.effort` the template's enable_thinking /
// reasoning_effort. Every field is checked here and a 400 names it; fields of the Responses API
// this server cannot honour (built-in tools, background, include, ...) are 400s naming them too.
// (Not to be confused with server/responses.h, which holds the generic HTTP answers.)
#pragma once

#include <string>

#include "server/protocol.h"
#include "server/responses_store.h"

namespace inferd::server {

struct ResponsesRequest {
  CompletionRequest chat;  // what runs: the converted chat request (chat.stream is `stream`)
  // The conversation this response continues and adds to: the previous response's input and
  // output items, then this request's input, each as an item ({"type": "message", ...},
  // {"type": "function_call", ...}, ...). Stored with the response.
  ojson input_items = ojson::array();
  bool store = true;
  std::string previous_response_id;
  // The request's settings as the response object echoes them: instructions, max_output_tokens,
  // metadata, parallel_tool_calls, previous_response_id, reasoning, store, temperature, text,
  // tool_choice, tools, top_p, truncation, user (OpenAI's defaults where not given).
  ojson echo = ojson::object();
};

// Checks `body` (the Responses request; `ctx.raw_body` its text, read again for the client's key
// order of schemas) and converts it. `store` resolves previous_response_id. Throws ApiError: 400
// naming the field (an unknown or unsupported one included), 404 for an unknown model, 400
// previous_response_not_found for an id that is not (or no longer) stored.
ResponsesRequest parse_responses_request(const json& body, const ValidationContext& ctx,
                                         ResponsesStore& store);

// Items (input items, or a stored response's output items) as chat messages: messages with text
// content, function_call items as an assistant message's tool_calls, function_call_output items
// as tool messages; reasoning items are dropped (as chat templates drop an earlier turn's
// reasoning). `param` names the array in errors ("input").
ojson items_to_messages(const ojson& items, const std::string& param);

}  // namespace inferd::server
