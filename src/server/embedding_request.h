// The /v1/embeddings request (OpenAI's fields, then vLLM's extras): parsing and validation into
// token-id inputs and the pooling the engine applies, and the base64 form of a vector. Every bad
// or unknown field is an ApiError 400 naming it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "server/protocol.h"

namespace inferd::server {

struct EmbeddingRequest {
  std::string model;                         // the name to answer with
  std::vector<std::vector<int32_t>> inputs;  // token ids, one engine request each, in order
  std::vector<std::string> input_texts;      // the text of each input (--log-prompts)
  PoolingParams pooling;                     // normalize and dimensions as asked (unset: model's)
  bool base64 = false;                       // encoding_format "base64"
  bool big_endian = false;                   // endianness "big" (base64 only)
  std::string user;
  int32_t priority = 0;
};

// Most inputs one request may hold (OpenAI's limit).
inline constexpr size_t kMaxEmbeddingInputs = 2048;

// Throws ApiError (400, or 404 for an unknown model). `ctx.generator` gives the tokenizer, the
// chat template, max_model_len and the model's pooling (dimensions are checked against it).
EmbeddingRequest parse_embedding_request(const json& body, const ValidationContext& ctx);

// `v` as float32 bytes (little-endian unless `big_endian`), base64-encoded: what OpenAI's
// encoding_format "base64" returns.
std::string embedding_base64(std::span<const float> v, bool big_endian = false);

}  // namespace inferd::server
