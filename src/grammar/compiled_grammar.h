// A grammar compiled against one vocabulary: the automaton and, for every byte-set position, the
// token table computed at compile time (XGrammar's split): tokens accepted whatever lies below
// the position's stack, and the uncertain ones the matcher checks against the real stacks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/grammar.h"

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

// Sets in `words` (at least bitmask_words(vocab) words) the bits of the ids `t` accepts; `scratch`
// is reused between calls (a rejected list is turned into an accepted bitmask there).
void or_accepted(const TokenTable& t, const TokenizerInfo::Impl& v, std::span<uint32_t> words,
                 std::vector<uint32_t>& scratch);

class CompiledGrammar {
 public:
  CompiledGrammar();
  ~CompiledGrammar();

  std::shared_ptr<const TokenizerInfo> vocab;
  Automaton automaton;
  std::vector<std::shared_ptr<const TokenTable>> tables;  // by position; null unless a byte set

  // The table of byte-set position `pos` given the real frames below it: `sites` are the return
  // positions of the frames, innermost first; `bottom`: nothing lies below the last one. A
  // position whose own table leaves many tokens uncertain (its rule has many callers: the body of
  // a bounded repetition, a string used everywhere) gets far fewer with its real callers known.
  // Computed on first use and kept for every matcher of this grammar (thread safe).
  std::shared_ptr<const TokenTable> context_table(int32_t pos, std::span<const int32_t> sites,
                                                  bool bottom) const;

  // The uncertain check's outcome shared by every matcher of this grammar: `key` is the content
  // of a matcher state (every stack's positions, the end flag, the context table settings), the
  // value the ids the check allowed. Thread safe (sharded locks); bounded (a shard that grows
  // past its share is emptied). find_checked returns null when the state is not known.
  std::shared_ptr<const std::vector<int32_t>> find_checked(const std::string& key) const;
  std::shared_ptr<const std::vector<int32_t>> keep_checked(std::string key,
                                                           std::vector<int32_t> ids) const;
  size_t checked_states() const;  // states in the shared memo now (tests)

 private:
  struct ContextTables;
  std::unique_ptr<ContextTables> context_;
  struct CheckMemo;
  std::unique_ptr<CheckMemo> checked_;
};

// A matcher uses context_table for a top whose table has more uncertain tokens than this
// (default 16: a table is built once for the grammar and its context, while the check runs again
// for every new state, and inside a bounded string every character is a new state; tests lower it
// to exercise the path).
int32_t context_table_threshold();
void set_context_table_threshold(int32_t n);
// How many frames below a top the context tables look at (default 8; tests lower it).
int32_t context_table_depth();
void set_context_table_depth(int32_t n);

// A context table whose base leaves more than this many tokens to walk first finds the states
// most tokens' bytes step along (the characters of a string) and classifies the tokens whose
// bytes stay on them without a walk (default 2048; tests lower it to exercise the path).
int32_t loop_classify_after();
void set_loop_classify_after(int32_t n);

// Number of cache hits / entries of the process-wide token table cache (tests, bench).
struct TableCacheStats {
  uint64_t hits = 0, misses = 0;
  size_t entries = 0;
};
TableCacheStats table_cache_stats();
void clear_table_cache();

}  // namespace inferd::grammar
