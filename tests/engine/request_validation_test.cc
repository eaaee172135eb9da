// validate_request (include/inferd/request_validation.h): every bound, the field each error names
// (through a FieldNamer too), and context_length_exceeded for requests that do not fit.
#include "inferd/request_validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

namespace inferd {
namespace {

const RequestBounds kBounds{/*vocab_size=*/100, /*max_model_len=*/64, /*max_logprobs=*/5,
                            /*can_detokenize=*/true};

GenerateRequest good() {
  GenerateRequest r;
  r.prompt_token_ids = {1, 2, 3};
  r.params.max_tokens = 8;
  return r;
}

// The error validate_request throws for good() changed by `mutate`; fails when none is thrown.
InvalidFieldError error_of(const std::function<void(GenerateRequest&)>& mutate,
                           const RequestBounds& b = kBounds, const FieldNamer& name = {}) {
  GenerateRequest r = good();
  mutate(r);
  try {
    validate_request(r, b, name);
  } catch (const InvalidFieldError& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return InvalidFieldError("", "");
}

TEST(RequestValidation, AcceptsWhatFits) {
  EXPECT_NO_THROW(validate_request(good(), kBounds));
  GenerateRequest r = good();
  r.params.max_tokens = 61;  // 3 + 61 = 64
  r.params.min_tokens = 61;
  r.params.top_k = -1;
  r.params.temperature = 0;
  r.params.logprobs = 5;
  r.params.stop = {"x"};
  r.params.stop_token_ids = {0, 99};
  r.params.logit_bias = {{99, -3.0f}};
  r.eos_token_ids = std::vector<int32_t>{99};
  EXPECT_NO_THROW(validate_request(r, kBounds));
  r.params.max_tokens.reset();  // up to the context: 61 tokens of room
  EXPECT_NO_THROW(validate_request(r, kBounds));
}

TEST(RequestValidation, EachBoundNamesItsField) {
  struct Case {
    std::function<void(GenerateRequest&)> mutate;
    std::string param;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.params.n = 0; }, "n",
       "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead."},
      {[](auto& r) { r.params.temperature = -0.5f; }, "temperature",
       "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -0.5 "
       "instead."},
      {[](auto& r) { r.params.temperature = NAN; }, "temperature",
       "Invalid 'temperature': not a finite number."},
      {[](auto& r) { r.params.top_p = 1.5f; }, "top_p",
       "Invalid 'top_p': expected a value in (0, 1], but got 1.5 instead."},
      {[](auto& r) { r.params.top_p = 0; }, "top_p",
       "Invalid 'top_p': expected a value in (0, 1], but got 0 instead."},
      {[](auto& r) { r.params.top_k = -2; }, "top_k",
       "Invalid 'top_k': integer below minimum value. Expected a value >= -1, but got -2 "
       "instead."},
      {[](auto& r) { r.params.min_p = 2; }, "min_p",
       "Invalid 'min_p': decimal above maximum value. Expected a value <= 1, but got 2 instead."},
      {[](auto& r) { r.params.repetition_penalty = 0; }, "repetition_penalty",
       "Invalid 'repetition_penalty': expected a value > 0, but got 0 instead."},
      {[](auto& r) { r.params.presence_penalty = 3; }, "presence_penalty",
       "Invalid 'presence_penalty': decimal above maximum value. Expected a value <= 2, but got 3 "
       "instead."},
      {[](auto& r) { r.params.frequency_penalty = -2.5f; }, "frequency_penalty",
       "Invalid 'frequency_penalty': decimal below minimum value. Expected a value >= -2, but got "
       "-2.5 instead."},
      {[](auto& r) {
         r.params.logit_bias = {{100, 1.0f}};
       },
       "logit_bias",
       "Invalid key in 'logit_bias': token id 100 is outside the vocabulary (size 100)."},
      {[](auto& r) {
         r.params.logit_bias = {{1, INFINITY}};
       },
       "logit_bias",
       "Invalid value for 'logit_bias[1]': expected a finite number, but got inf instead."},
      {[](auto& r) { r.params.max_tokens = -1; }, "max_tokens",
       "Invalid 'max_tokens': integer below minimum value. Expected a value >= 0, but got -1 "
       "instead."},
      {[](auto& r) { r.params.prompt_logprobs = 6; }, "prompt_logprobs",
       "Invalid 'prompt_logprobs': integer above maximum value. Expected a value <= 5, but got 6 "
       "instead."},
      {[](auto& r) { r.pooling.emplace(); }, "pooling",
       "Invalid 'pooling': this model serves generation; embeddings need a server started with "
       "--task embed."},
      {[](auto& r) { r.params.min_tokens = -1; }, "min_tokens",
       "Invalid 'min_tokens': integer below minimum value. Expected a value >= 0, but got -1 "
       "instead."},
      {[](auto& r) { r.params.min_tokens = 9; }, "min_tokens",
       "Invalid 'min_tokens': 9 is larger than max_tokens (8)."},
      {[](auto& r) {
         r.params.stop = {"a", ""};
       },
       "stop[1]", "Invalid 'stop[1]': stop strings must not be empty."},
      {[](auto& r) { r.params.stop = {"a"}, r.params.detokenize = false; }, "stop",
       "Invalid 'stop': stop strings need detokenization (a tokenizer and detokenize=true)."},
      {[](auto& r) {
         r.params.stop_token_ids = {5, 100};
       },
       "stop_token_ids[1]",
       "Invalid 'stop_token_ids[1]': integer above maximum value. Expected a value <= 99, but got "
       "100 instead."},
      {[](auto& r) { r.params.logprobs = 6; }, "logprobs",
       "Invalid 'logprobs': integer above maximum value. Expected a value <= 5, but got 6 "
       "instead."},
      {[](auto& r) { r.prompt_token_ids.clear(); }, "prompt_token_ids",
       "Invalid 'prompt_token_ids': the prompt is empty (0 tokens)."},
      {[](auto& r) { r.prompt_token_ids[2] = -4; }, "prompt_token_ids[2]",
       "Invalid 'prompt_token_ids[2]': integer below minimum value. Expected a value >= 0, but got "
       "-4 instead."},
      {[](auto& r) { r.params.max_tokens.reset(), r.params.min_tokens = 62; }, "min_tokens",
       "Invalid 'min_tokens': 62 exceeds the room left after the prompt (61 tokens)."},
      {[](auto& r) { r.eos_token_ids = std::vector<int32_t>{100}; }, "eos_token_ids[0]",
       "Invalid 'eos_token_ids[0]': integer above maximum value. Expected a value <= 99, but got "
       "100 instead."},
      {[](auto& r) {
         r.params.structured_outputs.emplace().begin_tokens = {7, 100};
       },
       "structured_outputs.begin_tokens[1]",
       "Invalid 'structured_outputs.begin_tokens[1]': integer above maximum value. Expected a "
       "value <= 99, but got 100 instead."},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.param);
    const InvalidFieldError e = error_of(c.mutate);
    EXPECT_EQ(e.param(), c.param);
    EXPECT_EQ(e.what(), c.message);
    EXPECT_EQ(e.code(), "");
  }
  // Stop strings need a decoder.
  RequestBounds no_decoder = kBounds;
  no_decoder.can_detokenize = false;
  EXPECT_EQ(error_of([](auto& r) { r.params.stop = {"a"}; }, no_decoder).param(), "stop");
}

TEST(RequestValidation, ContextLengthErrorsCarryTheirCode) {
  InvalidFieldError e = error_of([](auto& r) { r.params.max_tokens = 62; });
  EXPECT_EQ(e.param(), "max_tokens");
  EXPECT_EQ(e.code(), kContextLengthExceeded);
  EXPECT_EQ(std::string(e.what()),
            "Invalid 'max_tokens': the prompt (3 tokens) plus max_tokens (62) is 65 tokens, more "
            "than max_model_len (64).");
  // A prompt that fills the context is the prompt's fault, with or without max_tokens.
  e = error_of([](auto& r) { r.prompt_token_ids.assign(64, 1); });
  EXPECT_EQ(e.param(), "prompt_token_ids");
  EXPECT_EQ(e.code(), kContextLengthExceeded);
  EXPECT_EQ(std::string(e.what()),
            "Invalid 'prompt_token_ids': the prompt (64 tokens) leaves no room to generate within "
            "max_model_len (64).");
  e = error_of([](auto& r) { r.prompt_token_ids.assign(64, 1), r.params.max_tokens.reset(); });
  EXPECT_EQ(e.param(), "prompt_token_ids");
  EXPECT_EQ(e.code(), kContextLengthExceeded);
}

// max_tokens 0 and embeddings run the prompt only: a prompt may fill the context, not exceed it.
TEST(RequestValidation, PromptOnlyRequestsMayFillTheContext) {
  EXPECT_NO_THROW(validate_request(
      [] {
        GenerateRequest r;
        r.prompt_token_ids.assign(64, 1);
        r.params.max_tokens = 0;
        return r;
      }(),
      kBounds));
  InvalidFieldError e = error_of([](auto& r) {
    r.prompt_token_ids.assign(65, 1);
    r.params.max_tokens = 0;
  });
  EXPECT_EQ(e.code(), kContextLengthExceeded);
  EXPECT_EQ(std::string(e.what()),
            "Invalid 'prompt_token_ids': the prompt (65 tokens) is longer than max_model_len "
            "(64).");
}

// An embedding model takes pooling requests only; dimensions only where it is Matryoshka.
TEST(RequestValidation, EmbeddingRequestsOnEmbeddingModels) {
  RequestBounds embed = kBounds;
  embed.task = ModelTask::kEmbed;
  embed.hidden_size = 32;
  auto pooled = [](auto&& more) {
    return [more](GenerateRequest& r) {
      r.pooling.emplace();
      more(r);
    };
  };
  InvalidFieldError e = error_of([](auto&) {}, embed);
  EXPECT_EQ(e.param(), "pooling");
  EXPECT_EQ(std::string(e.what()),
            "Missing 'pooling': this model serves embeddings (--task embed); it does not "
            "generate.");
  GenerateRequest ok = good();
  ok.pooling.emplace();
  EXPECT_NO_THROW(validate_request(ok, embed));
  e = error_of(pooled([](auto& r) { r.pooling->dimensions = 8; }), embed);
  EXPECT_EQ(e.param(), "pooling.dimensions");
  EXPECT_NE(std::string(e.what()).find("does not support Matryoshka"), std::string::npos);
  embed.pooling.matryoshka = true;
  e = error_of(pooled([](auto& r) { r.pooling->dimensions = 33; }), embed);
  EXPECT_EQ(std::string(e.what()),
            "Invalid 'pooling.dimensions': integer above maximum value. Expected a value <= 32, "
            "but got 33 instead.");
  embed.pooling.dimensions = {8, 16};
  e = error_of(pooled([](auto& r) { r.pooling->dimensions = 12; }), embed);
  EXPECT_EQ(std::string(e.what()),
            "Invalid 'pooling.dimensions': 12 is not one of the model's dimensions [8, 16].");
  e = error_of(pooled([](auto& r) { r.params.n = 2; }), embed);
  EXPECT_EQ(e.param(), "n");
}

TEST(RequestValidation, TheCallerNamesTheFields) {
  const FieldNamer http = [](std::string_view f) -> std::string {
    if (f == "max_tokens") return "max_completion_tokens";
    if (f.starts_with("prompt_token_ids")) return "prompt[0]" + std::string(f.substr(16));
    return std::string(f);
  };
  InvalidFieldError e = error_of([](auto& r) { r.prompt_token_ids[1] = 100; }, kBounds, http);
  EXPECT_EQ(e.param(), "prompt[0][1]");
  EXPECT_EQ(std::string(e.what()),
            "Invalid 'prompt[0][1]': integer above maximum value. Expected a value <= 99, but got "
            "100 instead.");
  e = error_of([](auto& r) { r.params.min_tokens = 9; }, kBounds, http);
  EXPECT_EQ(e.param(), "min_tokens");
  EXPECT_EQ(std::string(e.what()),
            "Invalid 'min_tokens': 9 is larger than max_completion_tokens (8).");
  e = error_of([](auto& r) { r.params.max_tokens = 100; }, kBounds, http);
  EXPECT_EQ(e.param(), "max_completion_tokens");
  // An InvalidFieldError is an InvalidRequestError, as Engine::submit documents.
  GenerateRequest r = good();
  r.params.n = 0;
  EXPECT_THROW(validate_request(r, kBounds), InvalidRequestError);
}

}  // namespace
}  // namespace inferd
