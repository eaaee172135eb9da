// The vocabulary as the grammar engine walks it (TokenizerInfo::Impl): token bytes sorted so
// tokens sharing a prefix are adjacent (a trie laid flat), with the common prefix length of each
// token with the one before. (A TokenizerInfo for a model's Tokenizer: engine/grammar_vocab.h.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace inferd::grammar {

struct TokenizerInfo::Impl {
  std::vector<std::string> bytes;  // by id
  std::vector<int32_t> stop_ids;
  uint64_t serial = 0;  // identity of this vocabulary in the process-wide caches
  // Tokens with bytes (stop ids excluded), sorted by bytes: sorted[rank] = id.
  std::vector<int32_t> sorted;
  std::vector<int32_t> rank_of;  // by id, -1 for tokens without bytes
  std::vector<uint16_t> lcp;     // by rank: common prefix length with the token of rank - 1
  std::vector<int32_t> first_byte_begin;  // 257 entries: ranks of tokens starting with byte b
  std::vector<uint32_t> stop_mask;        // bitmask_words(vocab) words: the stop ids
  std::vector<uint32_t> byte_token_mask;  // the tokens in `sorted` (with bytes, not stop ids)
  // The bytes of the sorted tokens laid end to end (rank r: [sorted_off[r], sorted_off[r + 1])),
  // so trie walks read memory in order.
  std::string sorted_bytes;
  std::vector<uint32_t> sorted_off;
  size_t max_token_len = 0;  // the longest token in `sorted`, in bytes
  // short_masks[l] (l < kShortMasks): bitmask of the tokens in `sorted` of at most l bytes.
  static constexpr size_t kShortMasks = 65;
  std::vector<std::vector<uint32_t>> short_masks;
  // tail_bytes[4 * rank .. 4 * rank + 3]: the bytes of token `rank` after its first, as a 256-bit
  // set (a walk whose state loops on a set of bytes classifies the tokens inside it at once).
  std::vector<uint64_t> tail_bytes;
  std::string_view at_rank(int32_t r) const {
    const auto i = static_cast<size_t>(r);
    return std::string_view(sorted_bytes).substr(sorted_off[i], sorted_off[i + 1] - sorted_off[i]);
  }
};

}  // namespace inferd::grammar
