// The byte-level pushdown automaton a normalised grammar compiles to, and the stack machine that
// runs it. Positions are indexes into one flat array of elements: every alternative of every rule
// is laid out in order and closed by an end element. A stack is a chain of interned nodes
// (position, parent node): equal stacks are the same node id, so a matcher state is a set of
// node ids (the tops) plus whether some stack is empty (the grammar can end there). A rule
// reference in tail position pushes no frame (the callee returns straight to the caller's
// parent), so right recursion keeps stacks flat.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/grammar_ir.h"

namespace inferd::grammar {

struct Automaton {
  enum Kind : uint8_t { kBytes, kRule, kEnd };
  struct Elem {
    Kind kind;
    int32_t rule;    // the rule this position belongs to
    int32_t target;  // kRule: the referenced rule
    ByteSet bytes;   // kBytes
  };
  std::vector<Elem> elems;
  std::vector<std::vector<int32_t>> alt_begins;  // per rule: the first position of each alternative
  std::vector<std::string> rule_names;
  int32_t root = -1;

  // Analysis (filled by build_automaton).
  std::vector<bool> nullable;   // per rule
  std::vector<ByteSet> follow;  // per rule: bytes that can come right after the rule ends
  std::vector<ByteSet> first;   // per rule
  // Per rule: the only position a frame of this rule can return to (a non-tail reference, see
  // automaton.cc), -1 when there are several or the rule can be the bottom of a stack.
  std::vector<int32_t> unique_return;
  std::vector<bool> can_be_bottom;  // per rule: a stack of this rule can have no frame below
  std::vector<bool> only_bottom;    // per rule: a frame of this rule never has a frame below
  // Per rule: the bounded-repetition chains the parser builds for x{m,n} (h_k ::= x h_{k-1} | "",
  // h_1 ::= x | ""): repeat_left is k for such a rule (0 for any other), repeat_next the rule
  // h_{k-1} (-1 for h_1 and other rules). A frame in h_k returns to "up to k - 1 more x"; for a
  // token of fewer than j bytes h_k and h_j look the same (every x takes at least one byte or can
  // be skipped), which lets context tables share one table for all long counts.
  std::vector<int32_t> repeat_left, repeat_next;
  // Per rule: the chain rule h_{k+1} whose repeat_next is this one (-1: none, the chain's top).
  std::vector<int32_t> repeat_prev;
};

Automaton build_automaton(const Grammar& g);

// Interned stack nodes.
class NodePool {
 public:
  struct Node {
    int32_t pos;
    int32_t parent;  // -1: nothing below
  };
  NodePool() { clear(); }
  int32_t intern(int32_t pos, int32_t parent);
  const Node& operator[](int32_t id) const { return nodes_[static_cast<size_t>(id)]; }
  size_t size() const { return nodes_.size(); }
  void clear();

 private:
  void grow();
  std::vector<Node> nodes_;
  std::vector<int32_t> table_;  // open addressing, -1 empty
  size_t mask_ = 0;
};

// A bound on the parse work (stack nodes visited by StackMachine::expand, its whole cost) of
// what this thread does while the object lives: every machine counts against it, the matcher's
// own and the classifiers that build context tables for it. Past the bound, expand() throws
// GrammarError. Each mask and each accepted token runs under one, so that an ambiguous grammar a
// client sent (each byte keeping many parses alive, far below kMaxStacks) costs its own request
// an error, never every sequence's mask a stall. Outside one (compilation, which has its own time
// limit) work is unbounded. Nested budgets: the inner one applies, the outer resumes after.
class WorkBudget {
 public:
  explicit WorkBudget(int64_t visits);
  ~WorkBudget();
  WorkBudget(const WorkBudget&) = delete;
  WorkBudget& operator=(const WorkBudget&) = delete;
  // Nodes visited under this budget so far.
  int64_t used() const;

 private:
  int64_t outer_total_, outer_left_;
};

// Steps sets of stacks over bytes. Not thread safe; owns its node pool.
class StackMachine {
 public:
  explicit StackMachine(const Automaton& a) : a_(&a) {}

  // Expands the stack (pos, parent) until every top is a byte set: appends the tops to `tops`
  // (deduplicated within the current epoch) and sets `end` when some stack empties.
  void expand(int32_t pos, int32_t parent, std::vector<int32_t>& tops, bool& end);
  // Starts a new deduplication epoch (call before building one new state).
  void new_epoch();
  // Most stacks a state may hold (see step()).
  static constexpr size_t kMaxStacks = 4096;
  // The state after byte `b` from `tops` (a new epoch is started). Throws GrammarError beyond
  // kMaxStacks stacks.
  void step(std::span<const int32_t> tops, uint8_t b, std::vector<int32_t>& out, bool& end);
  // The initial state of the whole grammar.
  void initial(std::vector<int32_t>& tops, bool& end);

  NodePool& pool() { return pool_; }
  const Automaton& automaton() const { return *a_; }
  // Rebuilds the node pool with only the stacks under `tops` (renumbered in place).
  void compact(std::vector<int32_t>& tops);
  // Drops every node (ids become invalid).
  void reset() {
    pool_.clear();
    mark_.clear();
    epoch_ = 1;
  }

 private:
  const Automaton* a_;
  NodePool pool_;
  std::vector<uint32_t> mark_;
  uint32_t epoch_ = 1;
  std::vector<std::pair<int32_t, int32_t>> work_;
};

// States (sets of stacks) interned over a StackMachine, with their byte transitions memoised:
// the walks over sorted tokens revisit the same states constantly (inside a string, after every
// character the stacks are the same), so most steps become one hash lookup, as in a lazily built
// DFA. State ids stay valid until clear(); clear it whenever the machine's pool is reset or
// compacted.
class StateCache {
 public:
  explicit StateCache(StackMachine& m) : m_(&m) { clear(); }
  static constexpr int32_t kDead = 0;  // no stack and cannot end
  // The id of the state with these tops (any order, no duplicates) and end flag.
  int32_t intern(std::span<const int32_t> tops, bool end);
  int32_t step(int32_t s, uint8_t b) {
    const int32_t row = dense_row_[static_cast<size_t>(s)];
    if (row >= 0) {
      const int32_t t = dense_[static_cast<size_t>(row) * 256 + b];
      if (t >= 0) return t;
    }
    return step_slow(s, b);
  }
  std::span<const int32_t> tops(int32_t s) const {
    return {flat_.data() + off_[static_cast<size_t>(s)], len_[static_cast<size_t>(s)]};
  }
  bool end(int32_t s) const { return end_[static_cast<size_t>(s)] != 0; }
  bool has_tops(int32_t s) const { return len_[static_cast<size_t>(s)] != 0; }
  size_t states() const { return off_.size(); }
  size_t transitions() const { return trans_count_; }
  void clear();

 private:
  StackMachine* m_;
  std::vector<int32_t> flat_;
  std::vector<uint32_t> off_, len_;
  std::vector<uint8_t> end_;
  std::unordered_multimap<uint64_t, int32_t> by_hash_;
  // Transitions: open addressing on key (state << 8 | byte) + 1, 0 = empty.
  std::vector<uint64_t> trans_keys_;
  std::vector<int32_t> trans_vals_;
  size_t trans_count_ = 0;
  // A state with many transitions (inside a string, after every character) gets a dense row of
  // 256 (-1: not computed yet), so its steps are one load instead of a hash probe.
  static constexpr uint16_t kDenseAfter = 12;
  static constexpr size_t kMaxDenseRows = 1024;  // 1 MB
  std::vector<int32_t> dense_row_;               // by state: row index in dense_, -1 none
  std::vector<uint16_t> hashed_;                 // by state: transitions stored in the hash table
  std::vector<int32_t> dense_;
  int32_t step_slow(int32_t s, uint8_t b);
  void grow_transitions();
  std::vector<int32_t> scratch_, step_out_;
};

}  // namespace inferd::grammar
