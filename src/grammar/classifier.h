// The token classifier of the grammar compiler (internal to src/grammar): for one byte-set
// position of the automaton under a context (the frames known to lie below it), walks the sorted
// vocabulary like a trie and sorts every token into accepted, rejected or uncertain (it runs past
// what is known of the stack and the next byte can follow the rule there). compiler.cc runs it
// for every position, context_tables.cc for the contexts matchers meet. The walks are in
// classifier.cc, the tables they produce in token_tables.cc, the per-count thresholds of
// repetition chains in repeat_thresholds.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/compiled_grammar.h"
#include "grammar/grammar_ir.h"
#include "grammar/tokenizer_info.h"

namespace inferd::grammar {

// What a position's tokens depend on: the position, the return sites known to lie below it, and
// whether below those there is nothing (the end of the grammar) or an unknown stack.
struct Context {
  std::vector<int32_t> sites;  // return positions, innermost first
  bool bottom = false;         // the outermost frame is the bottom of every stack
  ByteSet follow;              // bytes that may follow the outermost frame's rule
};

class Classifier {
 public:
  Classifier(const Automaton& a, const TokenizerInfo::Impl& v) : a_(a), v_(v), m_(a), states_(m_) {
    state_.resize(v.max_token_len + 2);
    unc_.resize(v.max_token_len + 2);
  }

  // Classifies every token at `pos` under context `c`. With `base` (the table of `pos` under a
  // context that `c` refines: fewer frames known), only base's uncertain tokens are walked (what
  // base accepts or rejects holds under any stack it allows), and tokens of more than `max_len`
  // bytes stay uncertain without a walk (see CompiledGrammar::context_table).
  //
  // With `ref` (the table of `pos` with one repetition frame h_k replaced by a higher one of the
  // same chain), tokens of at most `ref_len` (= k) bytes take ref's class without a walk: such a
  // token starts at most k - 1 more x (every x takes a byte), so h_k never runs out under it.
  std::shared_ptr<const TokenTable> classify(int32_t pos, const Context& c,
                                             const TokenTable* base = nullptr,
                                             size_t max_len = SIZE_MAX,
                                             const TokenTable* ref = nullptr, size_t ref_len = 0);

  // Per token of base's uncertain ones, the smallest count k at which it is accepted / uncertain
  // under the chain frame h_k (at most kNever), from one walk under the frame `site` of level `top`
  // in a context of that one frame (`c`: follow or bottom below). The count of x a token's bytes
  // start must be the same along every stack (true of JSON string characters); null otherwise.
  static constexpr uint8_t kNever = 255;
  struct Thresholds {
    std::vector<int32_t> ranks;  // base's uncertain ranks
    std::vector<uint8_t> acc, unc;
    // Filled by index(): the ids with an accepting count, by that count (acc_off[k]: how many
    // have one <= k); base's accepted ids as a bitmask, and with every id of acc_ids; the entries
    // that can be uncertain at some count.
    std::vector<int32_t> acc_ids;
    std::vector<uint32_t> acc_off, base_bits, all_bits;
    std::vector<uint32_t> maybe_unc;  // indexes into ranks
    bool base_is_list = false;        // base stores its accepted ids as a list: base_ids
    std::vector<int32_t> base_ids;
  };
  std::shared_ptr<const Thresholds> thresholds(int32_t pos, const Context& c,
                                               const TokenTable& base, int32_t top, int32_t x);
  // Indexes thr's counts (the fields after `unc`) for table_from_thresholds.
  void index(Thresholds& thr, const TokenTable& base);
  // The table of `pos` under the chain frame h_k from `thr` (base's accepted tokens stay): the
  // accepted set from whichever is shorter, the ids accepted at k or those accepted only above.
  // With `max_len`, tokens longer than that stay uncertain (own accepted ones stay accepted).
  std::shared_ptr<const TokenTable> table_from_thresholds(const Thresholds& thr, int32_t k,
                                                          size_t max_len = SIZE_MAX);

 private:
  // The states X_1, X_2, ... that the first byte of most tokens reaches and that their next bytes
  // step along (X_i -> X_(i+1) on every byte of `loop`, no FOLLOW check on the way): a token whose
  // first byte is in `first` and whose other bytes are in `loop` walks X_1 .. X_len, so its class
  // is `accept[len]` (X_len has tops or can end: accepted; otherwise rejected) without a walk.
  // Inside a string every token without '"', '\\', control or non-ASCII bytes is such a token
  // (X_i is one looping state, or one a count in a bounded string), so a new context walks only
  // the rest.
  struct Loop {
    bool ok = false;
    uint64_t first[4] = {0, 0, 0, 0}, loop[4] = {0, 0, 0, 0};
    std::vector<uint8_t> accept;  // by length: 1 accepted, 0 rejected; longer tokens are walked
    bool in(int32_t r, std::string_view t, const uint64_t* tail) const {
      const auto b0 = static_cast<uint8_t>(t[0]);
      if (t.size() >= accept.size() || !(first[b0 / 64] >> (b0 % 64) & 1)) return false;
      const uint64_t* w = tail + static_cast<size_t>(r) * 4;
      return (w[0] & ~loop[0]) == 0 && (w[1] & ~loop[1]) == 0 && (w[2] & ~loop[2]) == 0 &&
             (w[3] & ~loop[3]) == 0;
    }
  };
  Loop find_loop(int32_t s0, const Context& c);

  // States and their transitions are kept from one classification to the next (the positions of
  // one grammar share most of them); dropped only when large.
  void bound_states();

  // Sets the bits of the ids `t` accepts.
  void or_accepted_bits(const TokenTable& t, std::vector<uint32_t>& bits) {
    or_accepted(t, v_, bits, scratch_bits_);
  }
  // The table of a context whose tokens of at most `len` bytes have their class in `ref`, those
  // longer than `len` among base's uncertain ones were walked into `accepted` / `uncertain`, and
  // the rest have their class in `base`. Built from bitmasks: no pass over the vocabulary.
  std::shared_ptr<const TokenTable> table_from_ref(const TokenTable& base, const TokenTable& ref,
                                                   size_t len, std::vector<int32_t>& accepted,
                                                   std::vector<int32_t>& uncertain);
  // A table from its accepted ids as a bitmask and its uncertain ranks (ascending).
  std::shared_ptr<const TokenTable> table_from_bits(std::vector<uint32_t> acc,
                                                    std::vector<int32_t> unc);
  // A table from its accepted ids (any order) and its uncertain ranks (ascending), stored in the
  // smallest form.
  std::shared_ptr<const TokenTable> make_table(std::vector<int32_t> accepted,
                                               std::vector<int32_t> uncertain);
  // The chain level of state s's stacks (see thresholds): -1 when they differ.
  int32_t level(int32_t s);

  const Automaton& a_;
  const TokenizerInfo::Impl& v_;
  StackMachine m_;
  StateCache states_;
  std::vector<int32_t> state_;
  std::vector<uint8_t> unc_;  // by depth: the prefix already reached past the known frames
  std::vector<uint32_t> scratch_bits_;
  std::vector<int16_t> level_;  // by state: level(s), -2 not computed
  int32_t level_x_ = -1;        // the x the levels are for
};

}  // namespace inferd::grammar
