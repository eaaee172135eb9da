// The OpenAI request schema: parsing and validation of /v1/chat/completions and /v1/completions
// bodies into engine requests. Every bad field is an ApiError naming the parameter.
// completion_request.cc parses the body (chat_request.cc the chat prompt, tool_request.cc tools and
// tool_choice, structured_outputs_request.cc the output constraint), tokenize_request.cc the
// /tokenize and /detokenize bodies; json_fields.h reads fields with OpenAI's error messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "inferd/lora.h"
#include "inferd/sampling_params.h"
#include "media/image_decode.h"
#include "media/image_processor.h"
#include "media/image_source.h"
#include "server/api_error.h"
#include "server/chat_output.h"
#include "server/generator.h"
#include "server/json_fields.h"

namespace inferd::server {

struct CompletionRequest {
  bool chat = false;
  std::string model;             // the name to answer with
  int32_t lora_adapter_id = -1;  // `model` names a LoRA adapter: its id (GenerateRequest's)
  std::vector<std::vector<int32_t>> prompts;  // token ids, one per prompt (chat: one)
  SamplingParams params;
  bool stream = false;
  bool include_usage = false;              // stream_options.include_usage
  bool continuous_usage = false;           // stream_options.continuous_usage_stats (vLLM)
  bool logprobs = false;                   // return logprobs
  int32_t top_logprobs = 0;                // alternatives per token
  bool echo = false;                       // completions: prepend the prompt text (and, with
                                           // logprobs, the prompt tokens' logprobs)
  std::optional<int32_t> prompt_logprobs;  // vLLM's prompt_logprobs field (rendered as vLLM)
  // Chat `echo` (vLLM): the last message's content, prepended to every choice's content when
  // that message has the role the answer takes (the assistant's, or with add_generation_prompt
  // false the last message's own); empty: nothing echoed.
  std::string chat_echo;
  bool tokens_as_ids = false;     // return_tokens_as_token_ids: logprob tokens as "token_id:N"
  bool return_token_ids = false;  // return_token_ids: prompt_token_ids and token_ids (vLLM)
  std::vector<std::string> prompt_texts;  // for echo and --log-prompts (chat: the rendered text)
  std::string user;
  std::string request_id;  // vLLM's: the answer's id is "chatcmpl-" / "cmpl-" and this
  int32_t priority = 0;
  // The field that gave params.structured_outputs (response_format, structured_outputs,
  // guided_json, ..., tools): the `param` of a 400 when the engine cannot compile it.
  std::string constraint_param;
  // Chat: how the output becomes reasoning_content / content / tool_calls (inactive: all content).
  ChatOutputOptions output;
  // Chat: the images of the messages' image parts in order, preprocessed by the generator's
  // image processor (empty for a model without one: such parts are a 400).
  std::vector<media::PixelValues> images;
  // The same images placed in the prompt (chat: prompts[0]): their token spans and hashes, as the
  // engine request carries them (GenerateRequest::images).
  std::vector<ImageInput> image_inputs;
};

// Bounds on the size of request fields (each beyond is a 400 naming the field and the limit).
// OpenAI's where it has one (128 tools, 2048 messages); the rest generous for real clients and
// small enough that one request cannot make the server scan or compile megabytes per token.
// Each is a serve flag (docs/api.md "Limits").
struct RequestLimits {
  size_t max_stop = 64;                         // stop sequences (--max-stop-sequences)
  size_t max_stop_bytes = 1024;                 // bytes of one stop sequence
  size_t max_logit_bias = 1024;                 // logit_bias entries
  size_t max_tools = 128;                       // tools
  size_t max_tools_bytes = size_t(1) << 20;     // the tools array as JSON
  size_t max_schema_bytes = size_t(256) << 10;  // a constraint (schema, regex, grammar) as JSON
  size_t max_messages = 2048;                   // chat messages (also /tokenize)
  int32_t max_n = 128;                          // n (OpenAI's bound); prompts x n <= 4 x this
  int32_t max_output_tokens = 0;                // max_tokens; 0: up to max_model_len
  int32_t max_prompt_tokens = 0;                // prompt tokens; 0: up to max_model_len
};

// Images in requests (issue 34): where they may be fetched from, and their limits (serve flags
// --allowed-media-domains, --allow-media-fetch, --max-image-bytes, --media-fetch-timeout,
// --max-image-pixels, --max-images-per-request).
struct MediaLimits {
  media::MediaFetchOptions fetch;
  media::DecodeLimits decode;
  size_t max_images = 16;  // image parts in one request
};

// The server's tool-calling and reasoning flags (vLLM's names).
struct ChatParsing {
  bool enable_auto_tool_choice = false;             // --enable-auto-tool-choice
  std::optional<ToolCallFormat> tool_call_parser;   // --tool-call-parser
  std::optional<ReasoningFormat> reasoning_parser;  // --reasoning-parser
};

struct ValidationContext {
  const Generator* generator = nullptr;
  std::vector<std::string> model_names;  // accepted names; the first is the default
  const LoraAdapters* lora = nullptr;    // LoRA adapters a request may name; null: none
  RequestLimits limits;
  ChatParsing parsing;
  // --trust-request-chat-template: a request's own `chat_template` is rendered; off, it is a 400.
  bool trust_request_chat_template = false;
  MediaLimits media;
  // The body's text, when at hand: schemas and tools are read from it again with their keys in
  // the client's order (properties are generated in schema order); empty: sorted order.
  std::string_view raw_body;
};

// POST /invocations (SageMaker) as vLLM routes it: a body with `messages` is a chat completion,
// one with `prompt` a completion. Anything else is a 400 saying what was expected.
bool invocation_is_chat(const json& body);

// The body's `model` (one of ctx.model_names or a LoRA adapter's name, else 404
// model_not_found); absent: the default name (the first).
std::string request_model_name(const json& body, const ValidationContext& ctx);

// Throws ApiError (400, or 404 for an unknown model).
CompletionRequest parse_completion_request(const json& body, bool chat,
                                           const ValidationContext& ctx);

// The request's output constraint: response_format (json_object, json_schema), vLLM's
// structured_outputs object or its older guided_json / guided_regex / guided_choice /
// guided_grammar. nullopt when none; more than one, or a field of the wrong type or shape, is an
// ApiError 400 naming the field(s). `ordered` is the body with the client's key order (or null).
// `param` (optional) receives the field the constraint came from.
std::optional<StructuredOutputs> parse_structured_outputs(const json& body, const ojson* ordered,
                                                          const RequestLimits& limits,
                                                          std::string* param = nullptr);

// Chat messages: checks roles, content and the count (at most max_messages) and returns them as
// the template expects (content given as text parts is joined into one string).
ojson normalize_messages(const json& messages, size_t max_messages = RequestLimits{}.max_messages);

// vLLM's /tokenize and /detokenize: the answer to a body whose `model` was already checked.
// /tokenize takes `prompt` or chat `messages` (rendered by the chat template); /detokenize takes
// `tokens`. Throws ApiError 400 naming the field.
ojson tokenize_body(const json& body, const Generator& gen, const RequestLimits& limits,
                    bool trust_request_chat_template = false);
ojson detokenize_body(const json& body, const Generator& gen);

}  // namespace inferd::server
