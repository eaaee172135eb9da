// Flat layout of a normalised grammar, its analysis (nullable, FIRST / FOLLOW byte sets, unique
// return positions) and the stack machine over interned stacks.
#include "grammar/automaton.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "grammar/grammar.h"

namespace inferd::grammar {

namespace {

// Every alternative of every rule laid out in order, each closed by an end element.
void lay_out(const Grammar& g, Automaton& a) {
  const size_t n = g.rules.size();
  a.root = g.root;
  a.alt_begins.resize(n);
  a.rule_names.resize(n);
  for (size_t r = 0; r < n; ++r) {
    a.rule_names[r] = g.rules[r].name;
    for (const auto& alt : g.rules[r].alts) {
      a.alt_begins[r].push_back(static_cast<int32_t>(a.elems.size()));
      for (const GElement& e : alt) {
        Automaton::Elem x{};
        x.rule = static_cast<int32_t>(r);
        if (e.kind == GElement::kBytes) {
          x.kind = Automaton::kBytes;
          x.target = -1;
          x.bytes = e.bytes;
        } else {
          x.kind = Automaton::kRule;
          x.target = e.rule;
        }
        a.elems.push_back(x);
      }
      Automaton::Elem end{};
      end.kind = Automaton::kEnd;
      end.rule = static_cast<int32_t>(r);
      end.target = -1;
      a.elems.push_back(end);
    }
  }
}

// Which rules can match nothing, and the bytes each rule can start with (a fixpoint).
void find_nullable_and_first(Automaton& a) {
  const size_t n = a.alt_begins.size();
  a.nullable.assign(n, false);
  a.first.assign(n, ByteSet{});
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      for (int32_t p : a.alt_begins[r]) {
        bool all_nullable = true;
        for (;; ++p) {
          const auto& e = a.elems[static_cast<size_t>(p)];
          if (e.kind == Automaton::kEnd) break;
          ByteSet f =
              e.kind == Automaton::kBytes ? e.bytes : a.first[static_cast<size_t>(e.target)];
          ByteSet merged = a.first[r];
          merged |= f;
          if (!(merged == a.first[r])) {
            a.first[r] = merged;
            changed = true;
          }
          if (e.kind == Automaton::kBytes || !a.nullable[static_cast<size_t>(e.target)]) {
            all_nullable = false;
            break;
          }
        }
        if (all_nullable && !a.nullable[r]) {
          a.nullable[r] = true;
          changed = true;
        }
      }
    }
  }
}

// The bytes that can follow each rule (FOLLOW). Positions are scanned from the end: helper rules
// come after the rules that use them, and what follows flows from a caller to its callee, so most
// grammars need one pass.
void find_follow(Automaton& a) {
  const size_t n = a.alt_begins.size();
  a.follow.assign(n, ByteSet{});
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t p = a.elems.size(); p-- > 0;) {
      const auto& e = a.elems[p];
      if (e.kind != Automaton::kRule) continue;
      ByteSet f;
      bool rest_nullable = true;
      for (size_t q = p + 1; a.elems[q].kind != Automaton::kEnd; ++q) {
        const auto& x = a.elems[q];
        f |= x.kind == Automaton::kBytes ? x.bytes : a.first[static_cast<size_t>(x.target)];
        if (x.kind == Automaton::kBytes || !a.nullable[static_cast<size_t>(x.target)]) {
          rest_nullable = false;
          break;
        }
      }
      if (rest_nullable) f |= a.follow[static_cast<size_t>(e.rule)];
      ByteSet& t = a.follow[static_cast<size_t>(e.target)];
      ByteSet merged = t;
      merged |= f;
      if (!(merged == t)) {
        t = merged;
        changed = true;
      }
    }
  }
}

// Return positions (unique_return, can_be_bottom, only_bottom): a frame of rule R returns to a
// non-tail reference to R, or (through tail references Q -> R) wherever Q's frames return.
void find_return_positions(const Grammar& g, Automaton& a) {
  const size_t n = a.alt_begins.size();
  constexpr int32_t kNone = -1, kMany = -2;
  std::vector<int32_t> ret(n, kNone);
  std::vector<bool> bottom(n, false);
  bottom[static_cast<size_t>(g.root)] = true;
  auto merge = [&](size_t r, int32_t v) {
    if (v == kNone || ret[r] == kMany || ret[r] == v) return false;
    ret[r] = ret[r] == kNone ? v : kMany;
    return true;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t p = a.elems.size(); p-- > 0;) {
      const auto& e = a.elems[p];
      if (e.kind != Automaton::kRule) continue;
      const auto t = static_cast<size_t>(e.target);
      if (a.elems[p + 1].kind == Automaton::kEnd) {
        changed |= merge(t, ret[static_cast<size_t>(e.rule)]);
        if (bottom[static_cast<size_t>(e.rule)] && !bottom[t]) bottom[t] = changed = true;
      } else {
        changed |= merge(t, static_cast<int32_t>(p));
      }
    }
  }
  a.unique_return.assign(n, -1);
  a.can_be_bottom = bottom;
  a.only_bottom.assign(n, false);
  for (size_t r = 0; r < n; ++r) a.only_bottom[r] = bottom[r] && ret[r] == kNone;
  for (size_t r = 0; r < n; ++r) {
    if (!bottom[r] && ret[r] >= 0) a.unique_return[r] = ret[r];
  }
}

// The repetition chains x{m,n} lowers to (repeat_left / repeat_next / repeat_prev; rules are
// scanned in order: h_{k-1} is created before h_k).
void find_repeat_chains(Automaton& a) {
  const size_t n = a.alt_begins.size();
  a.repeat_left.assign(n, 0);
  a.repeat_next.assign(n, -1);
  a.repeat_prev.assign(n, -1);
  auto elem = [&](int32_t p) -> const Automaton::Elem& { return a.elems[static_cast<size_t>(p)]; };
  for (size_t r = 0; r < n; ++r) {
    const auto& alts = a.alt_begins[r];
    if (alts.size() != 2 || elem(alts[1]).kind != Automaton::kEnd) continue;
    const int32_t p = alts[0];
    if (elem(p).kind != Automaton::kRule) continue;
    const int32_t x = elem(p).target;
    if (elem(p + 1).kind == Automaton::kEnd) {
      a.repeat_left[r] = 1;  // h_1 ::= x | ""
      continue;
    }
    if (elem(p + 1).kind != Automaton::kRule || elem(p + 2).kind != Automaton::kEnd) continue;
    const auto next = static_cast<size_t>(elem(p + 1).target);
    if (next >= r || a.repeat_left[next] == 0) continue;
    const int32_t np = a.alt_begins[next][0];
    if (elem(np).target != x) continue;
    a.repeat_left[r] = a.repeat_left[next] + 1;
    a.repeat_next[r] = static_cast<int32_t>(next);
    a.repeat_prev[next] = a.repeat_prev[next] == -1 ? static_cast<int32_t>(r) : -2;
  }
  for (int32_t& up : a.repeat_prev) up = std::max(up, -1);
}

}  // namespace

Automaton build_automaton(const Grammar& g) {
  Automaton a;
  lay_out(g, a);
  find_nullable_and_first(a);
  find_follow(a);
  find_return_positions(g, a);
  find_repeat_chains(a);
  return a;
}

// The hash of a node: the product's high half folded into its low half, so every bit of both the
// position and the parent reaches the low bits the table uses (without the fold the low bits
// depended on the parent alone, and the nodes of one parent shared one probe run).
static size_t node_slot(int32_t pos, int32_t parent) {
  uint64_t h =
      (static_cast<uint64_t>(static_cast<uint32_t>(pos)) << 32 | static_cast<uint32_t>(parent)) *
      0x9E3779B97F4A7C15ull;
  h ^= h >> 32;
  return static_cast<size_t>(h);
}

void NodePool::clear() {
  nodes_.clear();
  table_.assign(1024, -1);
  mask_ = table_.size() - 1;
}

void NodePool::grow() {
  table_.assign(table_.size() * 2, -1);
  mask_ = table_.size() - 1;
  for (size_t id = 0; id < nodes_.size(); ++id) {
    const Node& nd = nodes_[id];
    size_t i = node_slot(nd.pos, nd.parent) & mask_;
    while (table_[i] >= 0) i = (i + 1) & mask_;
    table_[i] = static_cast<int32_t>(id);
  }
}

int32_t NodePool::intern(int32_t pos, int32_t parent) {
  size_t i = node_slot(pos, parent) & mask_;
  for (;;) {
    const int32_t id = table_[i];
    if (id < 0) break;
    const Node& nd = nodes_[static_cast<size_t>(id)];
    if (nd.pos == pos && nd.parent == parent) return id;
    i = (i + 1) & mask_;
  }
  const auto id = static_cast<int32_t>(nodes_.size());
  nodes_.push_back({pos, parent});
  table_[i] = id;
  if (nodes_.size() * 2 > table_.size()) grow();
  return id;
}

void StackMachine::new_epoch() {
  if (++epoch_ == 0) {
    std::fill(mark_.begin(), mark_.end(), 0);
    epoch_ = 1;
  }
}

namespace {
// This thread's WorkBudget: its size and what is left (INT64_MAX: none).
thread_local int64_t t_budget_total = INT64_MAX;
thread_local int64_t t_budget_left = INT64_MAX;
}  // namespace

WorkBudget::WorkBudget(int64_t visits) : outer_total_(t_budget_total), outer_left_(t_budget_left) {
  t_budget_total = visits;
  t_budget_left = visits;
}

WorkBudget::~WorkBudget() {
  t_budget_total = outer_total_;
  t_budget_left = outer_left_;
}

int64_t WorkBudget::used() const {
  return t_budget_total - t_budget_left;
}

void StackMachine::expand(int32_t pos, int32_t parent, std::vector<int32_t>& tops, bool& end) {
  const auto& elems = a_->elems;
  work_.clear();
  work_.emplace_back(pos, parent);
  while (!work_.empty()) {
    const auto [p, par] = work_.back();
    work_.pop_back();
    if (--t_budget_left < 0) {
      throw GrammarError("the grammar is too ambiguous: one token mask needed more than " +
                         std::to_string(t_budget_total) +
                         " parse steps; make the alternatives and repetitions exclusive");
    }
    const int32_t id = pool_.intern(p, par);
    if (mark_.size() <= static_cast<size_t>(id)) mark_.resize(pool_.size() * 2 + 64, 0);
    if (mark_[static_cast<size_t>(id)] == epoch_) continue;
    mark_[static_cast<size_t>(id)] = epoch_;
    const Automaton::Elem& e = elems[static_cast<size_t>(p)];
    if (e.kind == Automaton::kBytes) {
      tops.push_back(id);
    } else if (e.kind == Automaton::kEnd) {
      if (par < 0) {
        end = true;
      } else {
        const NodePool::Node& up = pool_[par];
        work_.emplace_back(up.pos + 1, up.parent);
      }
    } else {
      const bool tail = elems[static_cast<size_t>(p) + 1].kind == Automaton::kEnd;
      const int32_t frame = tail ? par : id;
      for (int32_t b : a_->alt_begins[static_cast<size_t>(e.target)]) work_.emplace_back(b, frame);
    }
  }
}

void StackMachine::step(std::span<const int32_t> tops, uint8_t b, std::vector<int32_t>& out,
                        bool& end) {
  new_epoch();
  out.clear();
  end = false;
  const auto& elems = a_->elems;
  for (int32_t t : tops) {
    const NodePool::Node nd = pool_[t];
    if (elems[static_cast<size_t>(nd.pos)].bytes.test(b)) expand(nd.pos + 1, nd.parent, out, end);
  }
  // A very ambiguous grammar can keep more parses alive with every byte; past this bound one
  // request would stall every sequence's mask, so it fails instead (at compile time when the
  // token tables meet it, else at run time for its own request).
  if (out.size() > kMaxStacks) {
    throw GrammarError("the grammar is too ambiguous: more than " + std::to_string(kMaxStacks) +
                       " parses are alive at once; make the alternatives exclusive");
  }
}

void StackMachine::compact(std::vector<int32_t>& tops) {
  NodePool fresh;
  std::vector<int32_t> remap(pool_.size(), -1);
  std::vector<int32_t> chain;
  for (int32_t& t : tops) {
    chain.clear();
    for (int32_t v = t; v >= 0 && remap[static_cast<size_t>(v)] < 0; v = pool_[v].parent) {
      chain.push_back(v);
    }
    for (size_t k = chain.size(); k-- > 0;) {
      const NodePool::Node nd = pool_[chain[k]];
      const int32_t parent = nd.parent < 0 ? -1 : remap[static_cast<size_t>(nd.parent)];
      remap[static_cast<size_t>(chain[k])] = fresh.intern(nd.pos, parent);
    }
    t = remap[static_cast<size_t>(t)];
  }
  pool_ = std::move(fresh);
  mark_.assign(pool_.size() * 2 + 64, 0);
  epoch_ = 1;
}

void StateCache::clear() {
  flat_.clear();
  off_.clear();
  len_.clear();
  end_.clear();
  by_hash_.clear();
  trans_keys_.assign(4096, 0);
  trans_vals_.assign(4096, 0);
  trans_count_ = 0;
  dense_row_.clear();
  hashed_.clear();
  dense_.clear();
  intern({}, false);  // kDead
}

int32_t StateCache::intern(std::span<const int32_t> tops, bool end) {
  scratch_.assign(tops.begin(), tops.end());
  std::sort(scratch_.begin(), scratch_.end());
  uint64_t h = end ? 0x51ED27ull : 0x7A3Bull;
  for (int32_t t : scratch_) h = (h ^ static_cast<uint32_t>(t)) * 0x100000001B3ull + (h >> 29);
  auto [lo, hi] = by_hash_.equal_range(h);
  for (auto it = lo; it != hi; ++it) {
    const int32_t s = it->second;
    if (this->end(s) == end && len_[static_cast<size_t>(s)] == scratch_.size() &&
        std::equal(scratch_.begin(), scratch_.end(),
                   flat_.begin() + off_[static_cast<size_t>(s)])) {
      return s;
    }
  }
  const auto id = static_cast<int32_t>(off_.size());
  off_.push_back(static_cast<uint32_t>(flat_.size()));
  len_.push_back(static_cast<uint32_t>(scratch_.size()));
  end_.push_back(end ? 1 : 0);
  dense_row_.push_back(-1);
  hashed_.push_back(0);
  flat_.insert(flat_.end(), scratch_.begin(), scratch_.end());
  by_hash_.emplace(h, id);
  return id;
}

int32_t StateCache::step_slow(int32_t s, uint8_t b) {
  const auto si = static_cast<size_t>(s);
  if (dense_row_[si] >= 0) {
    // Dense row, this byte not computed yet.
    bool e = false;
    m_->step(tops(s), b, step_out_, e);
    const int32_t t = step_out_.empty() && !e ? kDead : intern(step_out_, e);
    dense_[static_cast<size_t>(dense_row_[si]) * 256 + b] = t;
    ++trans_count_;
    return t;
  }
  const uint64_t key = (static_cast<uint64_t>(s) << 8 | b) + 1;
  size_t mask = trans_keys_.size() - 1;
  size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
  while (trans_keys_[i] != 0) {
    if (trans_keys_[i] == key) return trans_vals_[i];
    i = (i + 1) & mask;
  }
  bool e = false;
  m_->step(tops(s), b, step_out_, e);
  const int32_t t = step_out_.empty() && !e ? kDead : intern(step_out_, e);
  if ((trans_count_ + 1) * 2 > trans_keys_.size()) {
    grow_transitions();
    mask = trans_keys_.size() - 1;
    i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
    while (trans_keys_[i] != 0) i = (i + 1) & mask;
  }
  trans_keys_[i] = key;
  trans_vals_[i] = t;
  ++trans_count_;
  if (++hashed_[si] == kDenseAfter && dense_.size() < kMaxDenseRows * 256) {
    // Promote: copy the hashed transitions into a new dense row (they stay in the table too).
    const auto row = static_cast<int32_t>(dense_.size() / 256);
    dense_.resize(dense_.size() + 256, -1);
    for (int c = 0; c < 256; ++c) {
      const uint64_t k = (static_cast<uint64_t>(s) << 8 | static_cast<uint64_t>(c)) + 1;
      size_t j = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 40) & mask;
      while (trans_keys_[j] != 0 && trans_keys_[j] != k) j = (j + 1) & mask;
      if (trans_keys_[j] == k)
        dense_[static_cast<size_t>(row) * 256 + static_cast<size_t>(c)] = trans_vals_[j];
    }
    dense_row_[si] = row;
  }
  return t;
}

void StateCache::grow_transitions() {
  std::vector<uint64_t> keys(trans_keys_.size() * 2, 0);
  std::vector<int32_t> vals(keys.size(), 0);
  const size_t mask = keys.size() - 1;
  for (size_t k = 0; k < trans_keys_.size(); ++k) {
    if (trans_keys_[k] == 0) continue;
    size_t i = static_cast<size_t>((trans_keys_[k] * 0x9E3779B97F4A7C15ull) >> 40) & mask;
    while (keys[i] != 0) i = (i + 1) & mask;
    keys[i] = trans_keys_[k];
    vals[i] = trans_vals_[k];
  }
  trans_keys_.swap(keys);
  trans_vals_.swap(vals);
}

void StackMachine::initial(std::vector<int32_t>& tops, bool& end) {
  new_epoch();
  tops.clear();
  end = false;
  for (int32_t b : a_->alt_begins[static_cast<size_t>(a_->root)]) expand(b, -1, tops, end);
}

}  // namespace inferd::grammar
