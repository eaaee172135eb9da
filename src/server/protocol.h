// The OpenAI request schema: parsing and validation of /v1/chat/completions and /v1/completions
// bodies into engine requests. Every bad field is an ApiError naming the parameter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "inferd/sampling_params.h"
#include "server/api_error.h"
#include "server/generator.h"

namespace inferd::server {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Parses a request body; throws ApiError 400 on invalid JSON or a body that is not an object.
json parse_json_body(const std::string& body);

struct CompletionRequest {
  bool chat = false;
  std::string model;                          // the name to answer with
  std::vector<std::vector<int32_t>> prompts;  // token ids, one per prompt (chat: one)
  SamplingParams params;
  bool stream = false;
  bool include_usage = false;             // stream_options.include_usage
  bool continuous_usage = false;          // stream_options.continuous_usage_stats (vLLM)
  bool logprobs = false;                  // return logprobs
  int32_t top_logprobs = 0;               // alternatives per token
  bool echo = false;                      // completions: prepend the prompt text
  std::vector<std::string> prompt_texts;  // for echo
  std::string user;
  int32_t priority = 0;
};

struct ValidationContext {
  const Generator* generator = nullptr;
  std::vector<std::string> model_names;  // accepted names; the first is the default
};

// Throws ApiError (400, or 404 for an unknown model).
CompletionRequest parse_completion_request(const json& body, bool chat,
                                           const ValidationContext& ctx);

// Field helpers (exposed for /tokenize and tests). Absent and null both mean "not given".
const json* find_field(const json& obj, const char* name);
std::optional<bool> get_bool(const json& obj, const char* name);
std::optional<int64_t> get_int(const json& obj, const char* name, int64_t lo, int64_t hi);
std::optional<double> get_number(const json& obj, const char* name, double lo, double hi);
std::optional<std::string> get_string(const json& obj, const char* name);
// "a string", "an integer", ... as OpenAI's messages say.
std::string json_type_name(const json& v);

// Chat messages: checks roles and content and returns them as the template expects (content
// given as text parts is joined into one string).
ojson normalize_messages(const json& messages);

}  // namespace inferd::server
