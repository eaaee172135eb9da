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
  // Accepted tokens: a bitmask (bitmask_words(vocab) words) when that is smaller than the list.
  bool accepted_is_bitmask = false;
  std::vector<uint32_t> accepted_bits;
  std::vector<int32_t> accepted_ids;
  // Rejected tokens, stored the same way (statistics and tests; the mask does not need them).
  int32_t rejected_count = 0;
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
