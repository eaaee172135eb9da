// The Anthropic Messages API request (POST /v1/messages, /v1/messages/count_tokens): the body
// checked field by field (every unknown or unsupported field a 400 naming it) and converted into
// the chat request it is (system and content blocks into chat messages, tool_use / tool_result
// into tool calls and tool messages, tools and tool_choice into OpenAI's, thinking into the
// template's enable_thinking), which then runs through the same chat template, validation, tool
// and reasoning parsers as /v1/chat/completions. Also Anthropic's error JSON.
#pragma once

#include <cstdint>
#include <string>

#include "server/protocol.h"

namespace inferd::server {

// The chat request of a /v1/messages body (one prompt, n = 1). Throws ApiError: 400 naming the
// field (Anthropic's name for it), 404 for an unknown model.
CompletionRequest parse_messages_request(const json& body, const ValidationContext& ctx);

// /v1/messages/count_tokens: the number of prompt tokens the same body (without max_tokens) gives.
int64_t count_message_tokens(const json& body, const ValidationContext& ctx);

// The OpenAI chat body a Messages body becomes (exposed for tests). `count_tokens`: the
// count_tokens route's fields (no max_tokens, stream, sampling fields). `ordered` is the body with
// the client's key order (or null). Throws ApiError 400 naming the field.
ojson messages_to_chat_body(const json& body, const ojson* ordered, const ValidationContext& ctx,
                            bool count_tokens = false);

// Anthropic's error JSON for `e`: {"type": "error", "error": {"type": ..., "message": ...}}, the
// error type from the status (invalid_request_error, authentication_error, not_found_error,
// rate_limit_error, overloaded_error, api_error, ...); the field (`param`) kept beside them.
std::string anthropic_error_body(const ApiError& e);
const char* anthropic_error_type(int status);

}  // namespace inferd::server
