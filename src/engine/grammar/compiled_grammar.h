// A grammar compiled against one vocabulary: the automaton and, for every byte-set position, the
// token table computed at compile time (XGrammar's split): tokens accepted whatever lies below
// the position's stack, and the uncertain ones the matcher checks against the real stacks.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/grammar/automaton.h"
#include "engine/grammar/grammar.h"

namespace inferd::grammar {

struct TokenTable {
  // The accepted tokens, stored in the smallest of three forms.
  enum class Storage : uint8_t {
    kAcceptedList,  // ids: the accepted ids
    kRejectedList,  // ids: the rejected ids (accepted = tokens with bytes - rejected - uncertain)
    kAcceptedBitmask,  // accepted_bits: bitmask_words(vocab) words
  };
  Storage storage = Storage::kAcceptedList;
  std::vector<int32_t> ids;  // sorted
  std::vector<uint32_t> accepted_bits;
  int32_t accepted_count = 0, rejected_count = 0;
  // Uncertain tokens as ranks in the sorted vocabulary (ascending: trie order).
  std::vector<int32_t> uncertain_ranks;
};

class CompiledGrammar {
 public:
  std::shared_ptr<const TokenizerInfo> vocab;
  Automaton automaton;
  std::vector<std::shared_ptr<const TokenTable>> tables;  // by position; null unless a byte set
};

// Number of cache hits / entries of the process-wide token table cache (tests, bench).
struct TableCacheStats {
  uint64_t hits = 0, misses = 0;
  size_t entries = 0;
};
TableCacheStats table_cache_stats();
void clear_table_cache();

}  // namespace inferd::grammar
