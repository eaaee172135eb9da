// The one validation of a GenerateRequest (include/inferd/request_validation.h). The messages are
// the ones the HTTP server's clients have always seen ("Invalid 'top_p': ..."), with the field
// named by the caller's FieldNamer.
#include "inferd/request_validation.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>

namespace inferd {

namespace {

// 2 -> "2", 0.5 -> "0.5" (a float as the client wrote it).
std::string fmt_num(float v) {
  if (v == std::floor(v) && std::abs(v) < 1e15f) return fmt::format("{}", int64_t(v));
  return fmt::format("{}", v);
}

class Validator {
 public:
  Validator(const GenerateRequest& r, const RequestBounds& b, const FieldNamer& namer)
      : r_(r), p_(r.params), b_(b), namer_(namer) {}

  void run() const {
    check_sampling();
    check_limits();
    check_stops();
    if (p_.logprobs) int_in(*p_.logprobs, "logprobs", 0, b_.max_logprobs);
    if (p_.prompt_logprobs) int_in(*p_.prompt_logprobs, "prompt_logprobs", 0, b_.max_logprobs);
    check_task();
    check_prompt();
    check_lengths();
    if (r_.eos_token_ids) token_ids(*r_.eos_token_ids, "eos_token_ids");
    if (p_.structured_outputs)
      token_ids(p_.structured_outputs->begin_tokens, "structured_outputs.begin_tokens");
  }

 private:
  std::string name(std::string_view field) const {
    return namer_ ? namer_(field) : std::string(field);
  }
  // Throws for `field`; `message(name)` says what is wrong with it.
  template <typename Message>
  [[noreturn]] void fail(std::string_view field, Message message,
                         const std::string& code = {}) const {
    std::string n = name(field);
    std::string m = message(n);
    throw InvalidFieldError(std::move(m), std::move(n), code);
  }

  void int_in(int64_t x, std::string_view field, int64_t lo, int64_t hi) const {
    if (x < lo)
      fail(field, [&](const std::string& n) {
        return fmt::format(
            "Invalid '{}': integer below minimum value. Expected a value >= {}, but got {} "
            "instead.",
            n, lo, x);
      });
    if (x > hi)
      fail(field, [&](const std::string& n) {
        return fmt::format(
            "Invalid '{}': integer above maximum value. Expected a value <= {}, but got {} "
            "instead.",
            n, hi, x);
      });
  }
  void decimal_in(float x, std::string_view field, float lo, float hi) const {
    if (!std::isfinite(x))
      fail(field, [&](const std::string& n) {
        return fmt::format("Invalid '{}': not a finite number.", n);
      });
    if (x < lo)
      fail(field, [&](const std::string& n) {
        return fmt::format(
            "Invalid '{}': decimal below minimum value. Expected a value >= {}, but got {} "
            "instead.",
            n, fmt_num(lo), fmt_num(x));
      });
    if (x > hi)
      fail(field, [&](const std::string& n) {
        return fmt::format(
            "Invalid '{}': decimal above maximum value. Expected a value <= {}, but got {} "
            "instead.",
            n, fmt_num(hi), fmt_num(x));
      });
  }
  // Each id in [0, vocab); the element's name is only formatted for the one out of it.
  void token_ids(std::span<const int32_t> ids, std::string_view field) const {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= b_.vocab_size)
        int_in(ids[i], fmt::format("{}[{}]", field, i), 0, int64_t(b_.vocab_size) - 1);
    }
  }

  void check_sampling() const {
    int_in(p_.n, "n", 1, INT32_MAX);
    decimal_in(p_.temperature, "temperature", 0.0f, std::numeric_limits<float>::infinity());
    if (!(p_.top_p > 0.0f && p_.top_p <= 1.0f))
      fail("top_p", [&](const std::string& n) {
        return fmt::format("Invalid '{}': expected a value in (0, 1], but got {} instead.", n,
                           fmt_num(p_.top_p));
      });
    int_in(p_.top_k, "top_k", -1, INT32_MAX);
    decimal_in(p_.min_p, "min_p", 0.0f, 1.0f);
    if (!(p_.repetition_penalty > 0.0f) || !std::isfinite(p_.repetition_penalty))
      fail("repetition_penalty", [&](const std::string& n) {
        return fmt::format("Invalid '{}': expected a value > 0, but got {} instead.", n,
                           fmt_num(p_.repetition_penalty));
      });
    decimal_in(p_.presence_penalty, "presence_penalty", -2.0f, 2.0f);
    decimal_in(p_.frequency_penalty, "frequency_penalty", -2.0f, 2.0f);
    for (const auto& [t, bias] : p_.logit_bias) {
      if (t < 0 || t >= b_.vocab_size)
        fail("logit_bias", [&](const std::string& n) {
          return fmt::format(
              "Invalid key in '{}': token id {} is outside the vocabulary (size {}).", n, t,
              b_.vocab_size);
        });
      if (!std::isfinite(bias))
        fail("logit_bias", [&](const std::string& n) {
          return fmt::format(
              "Invalid value for '{}[{}]': expected a finite number, but got {} instead.", n, t,
              bias);
        });
    }
  }

  void check_limits() const {
    // 0: the prompt is only run (scored, with prompt_logprobs); nothing is generated.
    if (p_.max_tokens) int_in(*p_.max_tokens, "max_tokens", 0, INT32_MAX);
    int_in(p_.min_tokens, "min_tokens", 0, INT32_MAX);
    if (p_.max_tokens && p_.min_tokens > *p_.max_tokens)
      fail("min_tokens", [&](const std::string& n) {
        return fmt::format("Invalid '{}': {} is larger than {} ({}).", n, p_.min_tokens,
                           name("max_tokens"), *p_.max_tokens);
      });
  }

  void check_stops() const {
    for (size_t i = 0; i < p_.stop.size(); ++i) {
      if (p_.stop[i].empty())
        fail(fmt::format("stop[{}]", i), [](const std::string& n) {
          return fmt::format("Invalid '{}': stop strings must not be empty.", n);
        });
    }
    if (!p_.stop.empty() && (!b_.can_detokenize || !p_.detokenize))
      fail("stop", [](const std::string& n) {
        return fmt::format(
            "Invalid '{}': stop strings need detokenization (a tokenizer and detokenize=true).", n);
      });
    token_ids(p_.stop_token_ids, "stop_token_ids");
  }

  // Embedding requests on an embedding model, generation on a generating one.
  void check_task() const {
    if (r_.pooling && b_.task != ModelTask::kEmbed)
      fail("pooling", [](const std::string& n) {
        return fmt::format(
            "Invalid '{}': this model serves generation; embeddings need a server started with "
            "--task embed.",
            n);
      });
    if (!r_.pooling && b_.task == ModelTask::kEmbed)
      fail("pooling", [](const std::string& n) {
        return fmt::format(
            "Missing '{}': this model serves embeddings (--task embed); it does not generate.", n);
      });
    if (!r_.pooling) return;
    if (p_.n != 1)
      fail("n", [&](const std::string& n) {
        return fmt::format("Invalid '{}': an embedding request has one output (got {}).", n, p_.n);
      });
    if (r_.pooling->dimensions) check_dimensions(*r_.pooling->dimensions);
  }

  void check_dimensions(int32_t d) const {
    const auto& dims = b_.pooling.dimensions;
    if (!b_.pooling.matryoshka)
      fail("pooling.dimensions", [](const std::string& n) {
        return fmt::format(
            "Invalid '{}': this model does not support Matryoshka representation; its "
            "embeddings cannot be shortened.",
            n);
      });
    int_in(d, "pooling.dimensions", 1, b_.hidden_size);
    if (!dims.empty() && std::find(dims.begin(), dims.end(), d) == dims.end())
      fail("pooling.dimensions", [&](const std::string& n) {
        return fmt::format("Invalid '{}': {} is not one of the model's dimensions [{}].", n, d,
                           fmt::join(dims, ", "));
      });
  }

  void check_prompt() const {
    if (r_.prompt_token_ids.empty())
      fail("prompt_token_ids", [](const std::string& n) {
        return fmt::format("Invalid '{}': the prompt is empty (0 tokens).", n);
      });
    token_ids(r_.prompt_token_ids, "prompt_token_ids");
  }

  // The prompt leaves room to generate, and max_tokens (or min_tokens) more fit max_model_len.
  void check_lengths() const {
    const int64_t plen = int64_t(r_.prompt_token_ids.size());
    const int64_t L = b_.max_model_len;
    // A prompt that generates nothing needs no room after it.
    const bool prompt_only = r_.pooling || (p_.max_tokens && *p_.max_tokens == 0);
    if (prompt_only ? plen > L : plen >= L)
      fail(
          "prompt_token_ids",
          [&](const std::string& n) {
            return prompt_only ? fmt::format(
                                     "Invalid '{}': the prompt ({} tokens) is longer than "
                                     "max_model_len ({}).",
                                     n, plen, L)
                               : fmt::format(
                                     "Invalid '{}': the prompt ({} tokens) leaves no room to "
                                     "generate within max_model_len ({}).",
                                     n, plen, L);
          },
          kContextLengthExceeded);
    if (p_.max_tokens && plen + *p_.max_tokens > L)
      fail(
          "max_tokens",
          [&](const std::string& n) {
            return fmt::format(
                "Invalid '{}': the prompt ({} tokens) plus max_tokens ({}) is {} tokens, more "
                "than max_model_len ({}).",
                n, plen, *p_.max_tokens, plen + *p_.max_tokens, L);
          },
          kContextLengthExceeded);
    if (!p_.max_tokens && p_.min_tokens > L - plen)
      fail("min_tokens", [&](const std::string& n) {
        return fmt::format("Invalid '{}': {} exceeds the room left after the prompt ({} tokens).",
                           n, p_.min_tokens, L - plen);
      });
  }

  const GenerateRequest& r_;
  const SamplingParams& p_;
  const RequestBounds& b_;
  const FieldNamer& namer_;
};

}  // namespace

void validate_request(const GenerateRequest& request, const RequestBounds& bounds,
                      const FieldNamer& name) {
  Validator(request, bounds, name).run();
}

}  // namespace inferd
