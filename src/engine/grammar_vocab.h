// The bridge from a model's Tokenizer to the grammar library's vocabulary view: the grammar
// engine (src/grammar) knows only token byte strings and stop ids, never the tokenizer. Header
// only, so the grammar tests and bench use it without the engine library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

// A TokenizerInfo for `tok`: ids below `vocab_size` (the model's, which may exceed the tokenizer's
// id_limit: extra ids get no bytes) with the bytes Tokenizer::token_bytes gives.
inline std::shared_ptr<const grammar::TokenizerInfo> tokenizer_info_from(
    const Tokenizer& tok, int32_t vocab_size, std::vector<int32_t> stop_ids) {
  std::vector<std::string> bytes(static_cast<size_t>(std::max(vocab_size, 0)));
  const auto limit = std::min<size_t>(bytes.size(), tok.id_limit());
  for (size_t id = 0; id < limit; ++id) {
    if (auto b = tok.token_bytes(static_cast<int32_t>(id))) bytes[id] = std::move(*b);
  }
  return std::make_shared<const grammar::TokenizerInfo>(std::move(bytes), std::move(stop_ids));
}

}  // namespace inferd
