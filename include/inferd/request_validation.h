// The one validation of a GenerateRequest: sampling parameters in range, token ids inside the
// vocabulary, logprobs within max_logprobs, stop strings usable, prompt + max_tokens within
// max_model_len. Engine::submit runs it on every request; a front end (the HTTP server) runs it
// before submitting, naming the fields as its clients know them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "inferd/engine.h"

namespace inferd {

// What a request is checked against (an engine's: its vocabulary, resolved config and decoder).
struct RequestBounds {
  int32_t vocab_size = 0;
  int32_t max_model_len = 0;
  int32_t max_logprobs = 0;
  bool can_detokenize = false;  // a TextDecoder is at hand (stop strings need one)
  ModelTask task = ModelTask::kGenerate;
  int32_t hidden_size = 0;        // the pooled vector's size (embeddings)
  EngineConfig::Pooling pooling;  // the model's (Matryoshka dimensions)
};

// A request field out of bounds. `param` names the field as the validator's FieldNamer gave it
// (by default the GenerateRequest / SamplingParams member: "top_p", "prompt_token_ids[3]",
// "stop_token_ids[0]", "max_tokens", "logit_bias", ...). `code` is "context_length_exceeded" when
// the prompt, or the prompt plus max_tokens, does not fit max_model_len; empty otherwise.
class InvalidFieldError : public InvalidRequestError {
 public:
  InvalidFieldError(std::string message, std::string param, std::string code = {})
      : InvalidRequestError(std::move(message)), param_(std::move(param)), code_(std::move(code)) {}
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  std::string param_;
  std::string code_;
};

// Maps a field's name (a GenerateRequest / SamplingParams member, with an index for an element:
// "prompt_token_ids", "prompt_token_ids[3]", "max_tokens", "logprobs", "stop_token_ids[0]",
// "eos_token_ids[0]", "structured_outputs.begin_tokens[0]", "stop[1]", ...) to the name errors use.
using FieldNamer = std::function<std::string(std::string_view field)>;

inline constexpr const char* kContextLengthExceeded = "context_length_exceeded";

// Throws InvalidFieldError for the first field out of bounds; `name` (optional) names fields in
// its messages and param.
void validate_request(const GenerateRequest& request, const RequestBounds& bounds,
                      const FieldNamer& name = {});

}  // namespace inferd
