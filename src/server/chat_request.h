// The prompt of a chat request: `messages` checked and normalized for the chat template (roles,
// text content parts, assistant tool calls), the tools and tool_choice, the template's options,
// the rendered and encoded prompt, and where the reasoning parser and a constraint start.
#pragma once

#include <string>
#include <vector>

#include "server/protocol.h"

namespace inferd::server {

// Encodes `text`; a tokenizer error is a 400 naming `param`.
std::vector<int32_t> encode_checked(const Generator& gen, const std::string& text, bool special,
                                    const char* param);

// Fills r.prompts / r.prompt_texts (one prompt), the tool-call and reasoning output options and
// the grammar's start from the chat body. `ordered` is the body with the client's key order (or
// null).
void parse_chat_prompt(const json& body, const ojson* ordered, const ValidationContext& ctx,
                       CompletionRequest& r);

}  // namespace inferd::server
