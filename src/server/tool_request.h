// Tools in a chat request: the `tools` array (checked, for the chat template and for grammars),
// and `tool_choice` with vLLM's rules (none / auto / required / a named function), which sets how
// the output is parsed into tool calls and, for required or a named function, the grammar that
// enforces the calls.
#pragma once

#include <string>
#include <vector>

#include "server/protocol.h"

namespace inferd::server {

// obj["function"], checked to be an object with a string "name" (a tool, or a tool call in an
// assistant message); a 400 naming the field under `p` otherwise.
const json& function_of(const json& obj, const std::string& p);

// The request's tools, checked; `template_tools` gets them for the chat template (client's key
// order when known).
std::vector<ToolSpec> parse_tools(const json& body, const ojson* ordered, const RequestLimits& lim,
                                  ojson& template_tools);

// tool_choice (vLLM's rules): "none" hides the tools; "auto" needs --enable-auto-tool-choice and
// a parser; "required" and a named function are enforced by a grammar in the parser's format
// (vLLM's own formats without a parser).
void apply_tool_choice(const json& body, const std::vector<ToolSpec>& tools,
                       const ChatParsing& parsing, const Generator& gen, CompletionRequest& r,
                       ChatTemplateArgs& args);

}  // namespace inferd::server
