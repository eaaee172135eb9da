// The text the router routes a request by: what the replica's prompt will start with, without
// rendering the chat template (the router has no tokenizer). Completions: the prompt string (the
// first of a batch; token ids as decimal text). Chat: each message's role and text in order, so
// that conversations sharing their first messages share a key prefix exactly as their rendered
// prompts share a prefix.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace inferd::router {

// At most `max_chars` characters (the prefix index looks at the first ones only).
std::string prompt_key(const nlohmann::json& body, bool chat, size_t max_chars = 64 * 1024);

}  // namespace inferd::router
