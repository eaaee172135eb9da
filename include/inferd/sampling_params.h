// Per-request sampling parameters, with vLLM's names and semantics.
//
// Order in which the sampler processes one logits row (vLLM V1 order):
//   1. logprobs are taken from the raw model logits (log-softmax before any processing; vLLM's
//      default `raw_logprobs` mode), so they do not depend on temperature, penalties or bias;
//   2. while fewer than `min_tokens` tokens were generated, EOS and `stop_token_ids` are masked;
//      with `structured_outputs`, every token the grammar does not allow next is masked (EOS is
//      allowed exactly when the output so far is complete);
//   3. `logit_bias` is added;
//   4. penalties: repetition (tokens of prompt + output: l > 0 ? l / r : l * r), then frequency
//      (l -= f * count in output) and presence (l -= p if it occurs in output);
//   5. temperature < 1e-5 samples greedily (argmax, lowest id on ties); otherwise each token gets
//      p = exp((l - max) / T) (the most likely one has 1), then min_p drops tokens with p < min_p,
//      top_k keeps the tokens at least as likely as the k-th (ties kept), top_p keeps the most
//      likely tokens until their share reaches top_p (at least one), and one token is drawn
//      from what is left in proportion to p.
// The CPU and CUDA samplers are held to the same arithmetic, so the same logits give the same token
// on either.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace inferd {

// A constraint on the output (vLLM's StructuredOutputsParams): exactly one of json, regex, choice,
// grammar or json_object. The engine compiles it when the request is submitted (a bad schema,
// regex or grammar is an InvalidRequestError naming the problem) and enforces it token by token.
struct StructuredOutputs {
  std::optional<std::string> json;                 // a JSON Schema, as JSON text
  std::optional<std::string> regex;                // the whole output matches this regex
  std::optional<std::vector<std::string>> choice;  // the output is one of these strings
  std::optional<std::string> grammar;              // GBNF (llama.cpp's EBNF dialect), rule `root`
  bool json_object = false;                        // any JSON object
  // Reasoning models: the constraint starts after this token is generated (`</think>`), and up
  // to two newlines may come before what it constrains; unset, it applies from the first output
  // token.
  std::optional<int32_t> start_after_token;
  // Tokens the constrained output starts with, in order, before the grammar takes over: special
  // tokens a grammar cannot write (Mistral's [TOOL_CALLS] before its tool-call array).
  std::vector<int32_t> begin_tokens;
};

struct SamplingParams {
  // Number of sequences generated for the prompt (they share the prompt's KV blocks).
  int32_t n = 1;

  float temperature = 1.0f;  // 0: greedy
  float top_p = 1.0f;        // (0, 1]; 1: off
  int32_t top_k = 0;         // 0 or -1: off
  float min_p = 0.0f;        // [0, 1]; 0: off

  float repetition_penalty = 1.0f;                    // > 0; 1: off (prompt and output tokens)
  float presence_penalty = 0.0f;                      // [-2, 2]; output tokens
  float frequency_penalty = 0.0f;                     // [-2, 2]; output tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> added to its logit

  // Same seed => same output, whatever else runs in the same batch, after a preemption, on the CPU
  // or the GPU: the draw for output position i is Philox4x32-10 keyed by the sequence's key, with
  // i as the counter. Sequence j of a request with n > 1 has a key derived from (seed, j).
  // Unseeded requests derive theirs from EngineConfig::seed and the request's submission number.
  std::optional<uint64_t> seed;

  // Unset: up to max_model_len - prompt length.
  std::optional<int32_t> max_tokens;
  int32_t min_tokens = 0;  // EOS, stop token ids and stop strings are ignored before this many

  std::vector<int32_t> stop_token_ids;  // generation stops after one of these (token kept in ids,
                                        // its text not returned)
  std::vector<std::string> stop;        // stop strings (need a TextDecoder); the matched string
                                        // is not returned unless include_stop_str_in_output
  bool include_stop_str_in_output = false;
  bool ignore_eos = false;

  // Unset: no logprobs. k >= 0: the sampled token's logprob plus the k most likely tokens.
  std::optional<int32_t> logprobs;
  // Unset: none. k >= 0: for every prompt token after the first, its logprob given the tokens
  // before it (raw logits, as `logprobs`), its rank and the k most likely tokens (vLLM's
  // prompt_logprobs). RequestOutput::prompt_logprobs carries them. Such a request reads nothing
  // from the prefix cache (every prompt position's logits are computed).
  std::optional<int32_t> prompt_logprobs;

  std::optional<StructuredOutputs> structured_outputs;

  bool detokenize = true;  // produce text (when the engine has a TextDecoder)
  bool skip_special_tokens = true;
  // vLLM's: false drops the space a decoder (WordPiece, or none) puts between two added tokens
  // in a row; no effect while skip_special_tokens is on.
  bool spaces_between_special_tokens = true;

  // True when this request samples greedily.
  bool greedy() const { return temperature < 1e-5f; }
};

}  // namespace inferd
