// GrammarMatcher: the set of stacks of one sequence, advanced byte by byte, and the next-token
// mask: the accepted tables of the distinct top positions ORed together, then the uncertain
// tokens checked against the real stacks by a trie walk over them (shared prefixes stepped once,
// a dead prefix skips every token under it). Buffers are reused; nothing is allocated per token
// once they have grown (the node pool grows with new stacks and is compacted when large). States
// and their byte transitions are memoised (StateCache), and so is the outcome of the uncertain
// check per state, so a state seen before (every character inside a string) costs table ORs only;
// that outcome is also shared by every matcher of the grammar, keyed by the stacks' content (the
// streams of one schema reach the same states). A ring of the last states accepted (copies of the
// tops, reused) lets rollback() undo accepted tokens.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/compiled_grammar.h"
#include "grammar/grammar.h"
#include "grammar/tokenizer_info.h"

namespace inferd::grammar {

namespace {
// Memory bounds of one matcher (the caches are rebuilt from scratch when one is passed).
constexpr size_t kCompactAt = size_t{1} << 18;       // stack nodes
constexpr size_t kMaxStates = size_t{1} << 14;       // memoised states
constexpr size_t kMaxTransitions = size_t{1} << 18;  // memoised byte transitions
constexpr size_t kMaxMemoIds = size_t{1} << 20;      // token ids remembered by the memo
constexpr size_t kMaxKeyPositions = 4096;  // deeper states are not shared between matchers
}  // namespace

struct GrammarMatcher::Impl {
  Impl(std::shared_ptr<const CompiledGrammar> grammar, int32_t max_rollback)
      : g(std::move(grammar)), v(g->vocab->impl()), m(g->automaton), states(m) {
    if (max_rollback < 0) {
      throw InternalError("grammar matcher: max_rollback_tokens is " +
                          std::to_string(max_rollback) + ", expected 0 or more");
    }
    m.initial(tops, end);
    state.resize(v.max_token_len + 2);
    pos_mark.assign(g->automaton.elems.size(), 0);
    rank_bits.assign((v.sorted.size() + 63) / 64, 0);
    history.resize(static_cast<size_t>(max_rollback));
  }

  // The state before one accepted step, kept for rollback().
  struct Snapshot {
    std::vector<int32_t> tops;
    bool end = false;
    bool terminated = false;
  };

  // Keeps the memo tables bounded (called between operations, never inside a walk).
  void bound_caches() {
    if (m.pool().size() > kCompactAt) {
      compact_pool();
      states.clear();
      memo.clear();
      memo_ids = 0;
    } else if (states.states() > kMaxStates || states.transitions() > kMaxTransitions) {
      states.clear();
      memo.clear();
      memo_ids = 0;
    } else if (memo_ids > kMaxMemoIds) {
      memo.clear();
      memo_ids = 0;
    }
  }

  // Rebuilds the node pool with only the stacks of the current state and of the kept history
  // (their node ids renumbered).
  void compact_pool() {
    if (kept == 0) {
      m.compact(tops);
      return;
    }
    std::vector<int32_t> all(tops);
    for (size_t k = 0; k < kept; ++k) {
      const auto& h = history[slot_back(k)].tops;
      all.insert(all.end(), h.begin(), h.end());
    }
    m.compact(all);
    auto it = all.begin();
    std::copy_n(it, tops.size(), tops.begin());
    it += static_cast<std::ptrdiff_t>(tops.size());
    for (size_t k = 0; k < kept; ++k) {
      auto& h = history[slot_back(k)].tops;
      std::copy_n(it, h.size(), h.begin());
      it += static_cast<std::ptrdiff_t>(h.size());
    }
  }

  // The ring slot of the k-th most recent snapshot (k = 0: the last one).
  size_t slot_back(size_t k) const { return (next_slot + history.size() - 1 - k) % history.size(); }

  // Keeps the current state as the one before the step being accepted.
  void remember() {
    if (history.empty()) return;
    Snapshot& h = history[next_slot];
    h.tops.assign(tops.begin(), tops.end());
    h.end = end;
    h.terminated = terminated;
    next_slot = next_slot + 1 == history.size() ? 0 : next_slot + 1;
    if (kept < history.size()) ++kept;
  }

  void rollback(int32_t n) {
    if (n < 0 || static_cast<size_t>(n) > kept) {
      throw InternalError("grammar matcher: cannot roll back " + std::to_string(n) +
                          " tokens: expected 0 to " + std::to_string(kept) +
                          " (the accepted steps kept; max_rollback_tokens " +
                          std::to_string(history.size()) + ")");
    }
    if (n == 0) return;
    const Snapshot& h = history[slot_back(static_cast<size_t>(n - 1))];
    tops.assign(h.tops.begin(), h.tops.end());
    end = h.end;
    terminated = h.terminated;
    next_slot = slot_back(static_cast<size_t>(n - 1));
    kept -= static_cast<size_t>(n);
  }

  // The WorkBudget of one mask, and of each 256 bytes accepted. A JSON schema's or a tool
  // call's hardest first mask over a 128k vocabulary visits about 10^5 nodes (the context tables
  // it builds included); `([a-z] | [a-z][a-z] | [a-z][a-z][a-z]){200,}` over Llama 3's
  // vocabulary visits ~10^6 a mask (50-90 ms on one core) and grows with every token.
  static constexpr int64_t kWorkBudget = 2'000'000;

  bool accept_bytes(std::string_view bytes) {
    if (terminated) return false;
    const WorkBudget budget(kWorkBudget * (1 + static_cast<int64_t>(bytes.size() / 256)));
    if (bytes.empty()) {
      remember();
      return true;
    }
    bound_caches();
    int32_t s = states.intern(tops, end);
    for (char ch : bytes) {
      s = states.step(s, static_cast<uint8_t>(ch));
      if (s == StateCache::kDead) return false;
    }
    remember();
    const auto t = states.tops(s);
    tops.assign(t.begin(), t.end());
    end = states.end(s);
    return true;
  }

  bool is_stop(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) / 32 < v.stop_mask.size() &&
           ((v.stop_mask[static_cast<size_t>(id) / 32] >> (id % 32)) & 1);
  }

  bool accept_token(int32_t id) {
    if (terminated || id < 0 || static_cast<size_t>(id) >= v.bytes.size()) return false;
    if (is_stop(id)) {
      if (!end) return false;
      remember();
      terminated = true;
      return true;
    }
    const std::string& b = v.bytes[static_cast<size_t>(id)];
    if (b.empty()) return false;
    return accept_bytes(b);
  }

  void fill(std::span<uint32_t> words) {
    const auto n = static_cast<int32_t>(v.bytes.size());
    if (words.size() < static_cast<size_t>(bitmask_words(n))) {
      throw InternalError("grammar: bitmask has " + std::to_string(words.size()) +
                          " words, expected " + std::to_string(bitmask_words(n)));
    }
    std::fill(words.begin(), words.end(), 0u);
    const WorkBudget budget(kWorkBudget);
    if (terminated) {
      for (size_t i = 0; i < v.stop_mask.size(); ++i) words[i] = v.stop_mask[i];
      return;
    }
    bound_caches();
    // Accepted tables of the distinct top positions; the uncertain ranks as a bitset (sorted and
    // deduplicated for free).
    if (++stamp == 0) {
      std::fill(pos_mark.begin(), pos_mark.end(), 0);
      stamp = 1;
    }
    const int32_t s0 = states.intern(tops, end);
    size_t n_uncertain = 0;
    const std::vector<int32_t>* known = nullptr;
    if (auto it = memo.find(s0); it != memo.end()) {
      known = it->second.get();
    } else if (state_key(s0)) {
      // Another matcher of this grammar may have checked the same stacks.
      if (auto shared = g->find_checked(key)) {
        known = shared.get();
        memo_ids += shared->size() + 1;
        memo.emplace(s0, std::move(shared));
      }
    }
    const auto threshold = static_cast<size_t>(std::max(context_table_threshold(), 0));
    const auto depth_limit = static_cast<size_t>(std::max(context_table_depth(), 0));
    held.clear();
    for (int32_t t : tops) {
      const NodePool::Node nd = m.pool()[t];
      const auto pos = static_cast<size_t>(nd.pos);
      const TokenTable* table = g->tables[pos].get();
      if (table->uncertain_ranks.size() > threshold ||
          (threshold == 0 && !table->uncertain_ranks.empty())) {
        // Many tokens depend on what lies below: use the table for the real frames.
        sites.clear();
        int32_t below = nd.parent;
        while (below >= 0 && sites.size() < depth_limit) {
          sites.push_back(m.pool()[below].pos);
          below = m.pool()[below].parent;
        }
        held.push_back(g->context_table(nd.pos, sites, below < 0));
        table = held.back().get();
        bool seen = false;
        for (size_t k = 0; k + 1 < held.size() && !seen; ++k) seen = held[k].get() == table;
        if (seen) continue;
      } else {
        if (pos_mark[pos] == stamp) continue;
        pos_mark[pos] = stamp;
      }
      const TokenTable& tab = *table;
      or_accepted(tab, v, words, scratch);
      if (!known) {
        for (int32_t r : tab.uncertain_ranks) {
          rank_bits[static_cast<size_t>(r) / 64] |= uint64_t{1} << (r % 64);
        }
        n_uncertain += tab.uncertain_ranks.size();
      }
    }
    if (known) {
      for (int32_t id : *known) words[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
    } else {
      check_uncertain(words, s0, n_uncertain);
    }
    if (end) {
      for (size_t i = 0; i < v.stop_mask.size(); ++i) words[i] |= v.stop_mask[i];
    }
  }

  // Runs the real stacks over the uncertain tokens not yet allowed, in trie order; remembers the
  // tokens it allowed for this state.
  void check_uncertain(std::span<uint32_t> words, int32_t s0, size_t n_uncertain) {
    unc.clear();
    if (n_uncertain > 0) {
      for (size_t wi = 0; wi < rank_bits.size(); ++wi) {
        uint64_t bits = rank_bits[wi];
        if (bits == 0) continue;
        rank_bits[wi] = 0;
        while (bits) {
          unc.push_back(static_cast<int32_t>(wi * 64 + static_cast<size_t>(__builtin_ctzll(bits))));
          bits &= bits - 1;
        }
      }
    }
    std::vector<int32_t> allowed;
    state[0] = s0;
    size_t depth = 0;
    std::string_view prev;
    for (int32_t r : unc) {
      const int32_t id = v.sorted[static_cast<size_t>(r)];
      if ((words[static_cast<size_t>(id) / 32] >> (id % 32)) & 1) continue;
      const std::string_view t = v.at_rank(r);
      size_t l = 0;
      const size_t lim = std::min({prev.size(), t.size(), depth});
      while (l < lim && prev[l] == t[l]) ++l;
      depth = l;
      prev = t;
      while (depth < t.size() && states.has_tops(state[depth])) {
        state[depth + 1] = states.step(state[depth], static_cast<uint8_t>(t[depth]));
        ++depth;
      }
      if (depth == t.size() && state[depth] != StateCache::kDead) {
        words[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
        allowed.push_back(id);
      }
    }
    memo_ids += allowed.size() + 1;
    if (key.empty()) {
      memo.emplace(s0, std::make_shared<const std::vector<int32_t>>(std::move(allowed)));
    } else {
      memo.emplace(s0, g->keep_checked(key, std::move(allowed)));
    }
  }

  // Writes the content of state s (every stack's positions top to bottom, the stacks sorted, the
  // end flag and the context table settings) into `key`; false (key empty) when the stacks are
  // too deep to be worth sharing.
  bool state_key(int32_t s) {
    key.clear();
    stack_pos.clear();
    stack_off.clear();
    size_t total = 0;
    for (int32_t t : states.tops(s)) {
      stack_off.push_back(static_cast<uint32_t>(stack_pos.size()));
      for (int32_t v = t; v >= 0; v = m.pool()[v].parent) {
        stack_pos.push_back(m.pool()[v].pos);
        if (++total > kMaxKeyPositions) return false;
      }
    }
    stack_off.push_back(static_cast<uint32_t>(stack_pos.size()));
    order.resize(stack_off.size() - 1);
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
    auto span_of = [&](uint32_t i) {
      return std::span<const int32_t>(stack_pos.data() + stack_off[i],
                                      stack_off[i + 1] - stack_off[i]);
    };
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      const auto x = span_of(a), y = span_of(b);
      return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
    });
    const int32_t head[3] = {states.end(s) ? 1 : 0, context_table_threshold(),
                             context_table_depth()};
    key.append(reinterpret_cast<const char*>(head), sizeof head);
    for (uint32_t i : order) {
      const auto x = span_of(i);
      const auto len = static_cast<int32_t>(x.size());
      key.append(reinterpret_cast<const char*>(&len), sizeof len);
      key.append(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(int32_t));
    }
    return true;
  }

  std::shared_ptr<const CompiledGrammar> g;
  const TokenizerInfo::Impl& v;
  StackMachine m;
  StateCache states;
  std::vector<int32_t> tops;
  bool end = false;
  bool terminated = false;
  // rollback(): the states before the last `kept` accepted steps, a ring (next_slot: where the
  // next one goes).
  std::vector<Snapshot> history;
  size_t next_slot = 0, kept = 0;
  // Tokens allowed by the uncertain check, by state (cleared with `states`).
  // Shared with the grammar's other matchers (CompiledGrammar::keep_checked) when the stacks are
  // shallow enough to key.
  std::unordered_map<int32_t, std::shared_ptr<const std::vector<int32_t>>> memo;
  size_t memo_ids = 0;
  std::string key;  // state_key's output
  std::vector<int32_t> stack_pos;
  std::vector<uint32_t> stack_off, order;
  // Scratch, reused.
  std::vector<int32_t> unc, state;
  std::vector<uint64_t> rank_bits;
  std::vector<uint32_t> scratch;
  std::vector<int32_t> sites;
  std::vector<std::shared_ptr<const TokenTable>> held;
  std::vector<uint32_t> pos_mark;
  uint32_t stamp = 0;
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar,
                               int32_t max_rollback_tokens)
    : impl_(std::make_unique<Impl>(std::move(grammar), max_rollback_tokens)) {}
GrammarMatcher::~GrammarMatcher() = default;
GrammarMatcher::GrammarMatcher(GrammarMatcher&&) noexcept = default;
GrammarMatcher& GrammarMatcher::operator=(GrammarMatcher&&) noexcept = default;

bool GrammarMatcher::accept_token(int32_t id) {
  return impl_->accept_token(id);
}
bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  return impl_->accept_bytes(bytes);
}
void GrammarMatcher::rollback(int32_t n) {
  impl_->rollback(n);
}
void GrammarMatcher::fill_next_token_bitmask(std::span<uint32_t> words) {
  impl_->fill(words);
}
bool GrammarMatcher::can_terminate() const {
  return impl_->end;
}
size_t GrammarMatcher::stack_count() const {
  return impl_->tops.size();
}
bool GrammarMatcher::is_terminated() const {
  return impl_->terminated;
}

}  // namespace inferd::grammar
