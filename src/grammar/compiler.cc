// Compiles GBNF against a vocabulary: parse and lower (gbnf_parser.cc), lay out the automaton
// (automaton.cc), then classify every token at every byte-set position by walking the sorted
// vocabulary like a trie from a stack holding that position (and the frames that are certain to
// lie below it): accepted, rejected, or uncertain (it runs past what is known of the stack and
// the next byte can follow the rule there). Tables are cached process-wide by a canonical key of
// the position's content, so rules repeated across grammars are classified once.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/compiled_grammar.h"
#include "grammar/grammar.h"
#include "grammar/grammar_ir.h"
#include "grammar/tokenizer_info.h"

namespace inferd::grammar {

void or_accepted(const TokenTable& t, const TokenizerInfo::Impl& v, std::span<uint32_t> words,
                 std::vector<uint32_t>& scratch) {
  switch (t.storage) {
    case TokenTable::Storage::kAcceptedList:
      for (int32_t id : t.ids) words[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      break;
    case TokenTable::Storage::kAcceptedBitmask:
      for (size_t i = 0; i < t.accepted_bits.size(); ++i) words[i] |= t.accepted_bits[i];
      break;
    case TokenTable::Storage::kRejectedList:
      scratch.assign(v.byte_token_mask.begin(), v.byte_token_mask.end());
      for (int32_t id : t.ids) scratch[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      for (int32_t r : t.uncertain_ranks) {
        const int32_t id = v.sorted[static_cast<size_t>(r)];
        scratch[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      }
      for (size_t i = 0; i < scratch.size(); ++i) words[i] |= scratch[i];
      break;
  }
}
namespace {

constexpr size_t kMaxChain = 32;
constexpr size_t kMaxCacheEntries = 1 << 14;

using Tables = std::vector<std::shared_ptr<const TokenTable>>;
constexpr size_t kMaxGrammarEntries = 256;

struct TableCache {
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const TokenTable>> map;
  // Whole grammars (vocabulary serial, root and GBNF text -> every position's table): a grammar
  // compiled again (the same schema in every request) skips building the position keys, which
  // cost more than the classification once tables are cached.
  std::unordered_map<std::string, std::shared_ptr<const Tables>> grammars;
  uint64_t hits = 0, misses = 0;
};
TableCache& cache() {
  static TableCache* c = new TableCache();
  return *c;
}

// What a position's tokens depend on: the position, the return sites known to lie below it, and
// whether below those there is nothing (the end of the grammar) or an unknown stack.
struct Context {
  std::vector<int32_t> sites;  // return positions, innermost first
  bool bottom = false;         // the outermost frame is the bottom of every stack
  ByteSet follow;              // bytes that may follow the outermost frame's rule
};

Context context_of(const Automaton& a, int32_t pos) {
  Context c;
  auto r = static_cast<size_t>(a.elems[static_cast<size_t>(pos)].rule);
  while (a.unique_return[r] >= 0 && c.sites.size() < kMaxChain) {
    const int32_t s = a.unique_return[r];
    c.sites.push_back(s);
    r = static_cast<size_t>(a.elems[static_cast<size_t>(s)].rule);
  }
  c.bottom = a.unique_return[r] < 0 && a.only_bottom[r];
  if (!c.bottom) c.follow = a.follow[r];
  return c;
}

// A byte set as the count of its ranges, then each range (first, last byte): keys stay short (most
// sets are a few ranges; 32 bytes as a bitmap), and the encoding is exact (it reads back).
void append_ranges(std::string& key, const ByteSet& set) {
  const size_t at = key.size();
  key.push_back('\0');
  uint8_t ranges = 0;
  for (int b = 0; b < 256;) {
    if (!set.test(static_cast<uint8_t>(b))) {
      ++b;
      continue;
    }
    int e = b;
    while (e + 1 < 256 && set.test(static_cast<uint8_t>(e + 1))) ++e;
    key.push_back(static_cast<char>(b));
    key.push_back(static_cast<char>(e));
    ++ranges;
    b = e + 1;
  }
  key[at] = static_cast<char>(ranges);
}

// Canonical key: the elements from the position on, the rest of every known frame, and every rule
// reachable from them, with rules numbered in order of first appearance.
// `enc`: every byte-set position's set as append_ranges writes it.
std::string position_key(const Automaton& a, int32_t pos, const Context& c, uint64_t serial,
                         const std::vector<std::string>& enc) {
  std::string key;
  key.append(reinterpret_cast<const char*>(&serial), sizeof serial);
  std::vector<int32_t> num(a.alt_begins.size(), -1);  // rule -> its number in this key
  std::vector<int32_t> queue;
  auto emit_rest = [&](int32_t p) {
    for (;; ++p) {
      const Automaton::Elem& e = a.elems[static_cast<size_t>(p)];
      if (e.kind == Automaton::kEnd) break;
      if (e.kind == Automaton::kBytes) {
        key.push_back('B');
        key.append(enc[static_cast<size_t>(p)]);
      } else {
        int32_t& n = num[static_cast<size_t>(e.target)];
        if (n < 0) {
          n = static_cast<int32_t>(queue.size());
          queue.push_back(e.target);
        }
        key.push_back('R');
        key.append(reinterpret_cast<const char*>(&n), sizeof(int32_t));
      }
    }
    key.push_back('E');
  };
  emit_rest(pos);
  for (int32_t s : c.sites) {
    key.push_back('|');
    emit_rest(s + 1);
  }
  key.push_back(c.bottom ? 'T' : 'F');
  append_ranges(key, c.follow);
  for (size_t i = 0; i < queue.size(); ++i) {
    key.push_back('r');
    for (int32_t b : a.alt_begins[static_cast<size_t>(queue[i])]) emit_rest(b);
  }
  return key;
}

// Bits set in x, without a library call (the build targets x86-64 without POPCNT, where
// __builtin_popcount calls libgcc once a word: 2% of a corpus run went there).
size_t popcount64(uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555ull;
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<size_t>((x * 0x0101010101010101ull) >> 56);
}

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
                                             const TokenTable* ref = nullptr, size_t ref_len = 0) {
    // States and their transitions are kept from one classification to the next (the positions
    // of one grammar share most of them); dropped only when large.
    if (m_.pool().size() > (size_t{1} << 20) || states_.states() > (size_t{1} << 16) ||
        states_.transitions() > (size_t{1} << 20)) {
      m_.reset();
      states_.clear();
    }
    int32_t parent = -1;
    for (size_t k = c.sites.size(); k-- > 0;) parent = m_.pool().intern(c.sites[k], parent);
    const int32_t top = m_.pool().intern(pos, parent);
    state_[0] = states_.intern(std::span<const int32_t>(&top, 1), false);
    unc_[0] = 0;

    std::vector<int32_t> accepted, uncertain;
    size_t depth = 0;  // depths 0..depth of the state stack are valid for the current prefix
    std::string_view prev;
    // Walks token r; returns true when it died before its end (then every token sharing its first
    // depth + 1 bytes has the same class: `dead_unc`).
    bool dead_unc = false;
    auto walk = [&](int32_t r, std::string_view t, size_t lcp) {
      depth = std::min(depth, lcp);
      while (depth < t.size() && states_.has_tops(state_[depth])) {
        const auto byte = static_cast<uint8_t>(t[depth]);
        const int32_t s = state_[depth];
        state_[depth + 1] = states_.step(s, byte);
        unc_[depth + 1] =
            static_cast<uint8_t>(unc_[depth] | (states_.end(s) && c.follow.test(byte)));
        ++depth;
      }
      const int32_t s = state_[depth];
      bool acc = false, unc = false;
      if (depth == t.size()) {
        acc = states_.has_tops(s) || states_.end(s);
        unc = !acc && unc_[depth];
      } else {
        unc = unc_[depth] || (states_.end(s) && c.follow.test(static_cast<uint8_t>(t[depth])));
      }
      if (acc) {
        accepted.push_back(v_.sorted[static_cast<size_t>(r)]);
      } else if (unc) {
        uncertain.push_back(r);
      }
      dead_unc = unc;
      return depth < t.size();
    };
    // The first rank after r outside the subtree of r's first `len` bytes.
    auto subtree_end = [&](int32_t r, size_t len) {
      auto e = static_cast<size_t>(r) + 1;
      while (e < v_.sorted.size() && v_.lcp[e] >= len) ++e;
      return static_cast<int32_t>(e);
    };
    if (base) {
      const auto& ranks = base->uncertain_ranks;
      const Loop loop = static_cast<int64_t>(ranks.size()) > loop_classify_after()
                            ? find_loop(state_[0], c)
                            : Loop{};
      for (size_t i = 0; i < ranks.size(); ++i) {
        const int32_t r = ranks[i];
        const std::string_view t = v_.at_rank(r);
        if (t.size() <= ref_len) continue;  // ref's class (below)
        if (t.size() > max_len) {
          uncertain.push_back(r);
          continue;
        }
        if (loop.ok && loop.in(r, t, v_.tail_bytes.data())) {
          if (loop.accept[t.size()]) accepted.push_back(v_.sorted[static_cast<size_t>(r)]);
          continue;
        }
        size_t l = 0;
        const size_t lim = std::min({prev.size(), t.size(), depth});
        while (l < lim && prev[l] == t[l]) ++l;
        prev = t;
        if (!walk(r, t, l)) continue;
        // Dead prefix: the tokens under it share the class.
        const int32_t end = subtree_end(r, depth + 1);
        for (; i + 1 < ranks.size() && ranks[i + 1] < end; ++i) {
          const int32_t r2 = ranks[i + 1];
          const size_t len =
              v_.sorted_off[static_cast<size_t>(r2) + 1] - v_.sorted_off[static_cast<size_t>(r2)];
          if (len > ref_len && (dead_unc || len > max_len)) uncertain.push_back(r2);
        }
      }
      if (ref) return table_from_ref(*base, *ref, ref_len, accepted, uncertain);
      const size_t words =
          static_cast<size_t>(bitmask_words(static_cast<int32_t>(v_.bytes.size())));
      if (base->storage == TokenTable::Storage::kAcceptedList &&
          base->ids.size() + accepted.size() <= words) {
        accepted.insert(accepted.end(), base->ids.begin(), base->ids.end());
        return make_table(std::move(accepted), std::move(uncertain));  // a short list
      }
      // From bitmasks: no pass over the vocabulary (base's accepted ids may be most of it).
      std::vector<uint32_t> acc(
          static_cast<size_t>(bitmask_words(static_cast<int32_t>(v_.bytes.size()))), 0);
      or_accepted_bits(*base, acc);
      for (int32_t id : accepted) acc[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      return table_from_bits(std::move(acc), std::move(uncertain));
    } else {
      const ByteSet& first = a_.elems[static_cast<size_t>(pos)].bytes;
      for (int b = 0; b < 256; ++b) {
        if (!first.test(static_cast<uint8_t>(b))) continue;
        depth = 0;
        const int32_t stop = v_.first_byte_begin[static_cast<size_t>(b) + 1];
        for (int32_t r = v_.first_byte_begin[static_cast<size_t>(b)]; r < stop; ++r) {
          const std::string_view t = v_.at_rank(r);
          if (!walk(r, t, v_.lcp[static_cast<size_t>(r)])) continue;
          const int32_t end = std::min(subtree_end(r, depth + 1), stop);
          if (dead_unc) {
            for (int32_t r2 = r + 1; r2 < end; ++r2) uncertain.push_back(r2);
          }
          r = end - 1;
        }
      }
    }
    return make_table(std::move(accepted), std::move(uncertain));
  }

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
  Loop find_loop(int32_t s0, const Context& c) {
    Loop out;
    auto has = [](const uint64_t* set, int b) { return (set[b / 64] >> (b % 64) & 1) != 0; };
    auto add = [](uint64_t* set, int b) { set[b / 64] |= uint64_t{1} << (b % 64); };
    auto safe = [&](int32_t s, int b) {
      return !(states_.end(s) && c.follow.test(static_cast<uint8_t>(b)));
    };
    // The most common target of state s over the bytes in `among` that are safe from s.
    auto common = [&](int32_t s, const uint64_t* among, int32_t& best) {
      std::unordered_map<int32_t, int32_t> count;
      int32_t x = StateCache::kDead;
      best = 0;
      for (int b = 0; b < 256; ++b) {
        if (!has(among, b) || !safe(s, b)) continue;
        const int32_t t = states_.step(s, static_cast<uint8_t>(b));
        if (!states_.has_tops(t) && !states_.end(t)) continue;
        const int32_t n = ++count[t];
        if (n > best) {
          best = n;
          x = t;
        }
      }
      return x;
    };
    const uint64_t all[4] = {~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}};
    int32_t best = 0;
    int32_t x = common(s0, all, best);
    if (best < 2) return out;
    for (int b = 0; b < 256; ++b) {
      if (safe(s0, b) && states_.step(s0, static_cast<uint8_t>(b)) == x) add(out.first, b);
    }
    std::copy(std::begin(all), std::end(all), std::begin(out.loop));
    out.accept.push_back(0);  // no token is empty
    const size_t max_len = std::min(v_.max_token_len, size_t{256});
    for (size_t len = 1; len <= max_len; ++len) {
      out.accept.push_back(states_.has_tops(x) || states_.end(x) ? 1 : 0);
      if (!states_.has_tops(x)) break;  // the walk stops here: longer tokens are walked
      const int32_t next = common(x, out.loop, best);
      if (best < 2) break;
      uint64_t keep[4] = {0, 0, 0, 0};
      for (int b = 0; b < 256; ++b) {
        if (has(out.loop, b) && safe(x, b) && states_.step(x, static_cast<uint8_t>(b)) == next) {
          add(keep, b);
        }
      }
      std::copy(std::begin(keep), std::end(keep), std::begin(out.loop));
      if (next == x) {
        // X_len loops: every longer token ends in it too.
        for (size_t l = len + 1; l <= max_len; ++l) out.accept.push_back(out.accept[len]);
        break;
      }
      x = next;
    }
    out.ok = true;
    return out;
  }

  // Sets the bits of the ids `t` accepts.
  void or_accepted_bits(const TokenTable& t, std::vector<uint32_t>& bits) {
    or_accepted(t, v_, bits, scratch_bits_);
  }

  // The table of a context whose tokens of at most `len` bytes have their class in `ref`, those
  // longer than `len` among base's uncertain ones were walked into `accepted` / `uncertain`, and
  // the rest have their class in `base`. Built from bitmasks: no pass over the vocabulary.
  std::shared_ptr<const TokenTable> table_from_ref(const TokenTable& base, const TokenTable& ref,
                                                   size_t len, std::vector<int32_t>& accepted,
                                                   std::vector<int32_t>& uncertain) {
    const size_t words = static_cast<size_t>(bitmask_words(static_cast<int32_t>(v_.bytes.size())));
    std::vector<uint32_t> acc(words, 0);
    or_accepted_bits(ref, acc);
    const auto& shorts = v_.short_masks[len];
    for (size_t i = 0; i < words; ++i) acc[i] &= shorts[i];
    or_accepted_bits(base, acc);
    for (int32_t id : accepted) acc[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
    std::vector<int32_t> unc;
    unc.reserve(uncertain.size() + ref.uncertain_ranks.size());
    for (int32_t r : ref.uncertain_ranks) {
      if (v_.sorted_off[static_cast<size_t>(r) + 1] - v_.sorted_off[static_cast<size_t>(r)] <=
          len) {
        unc.push_back(r);
      }
    }
    const auto mid = static_cast<std::ptrdiff_t>(unc.size());
    unc.insert(unc.end(), uncertain.begin(), uncertain.end());
    std::inplace_merge(unc.begin(), unc.begin() + mid, unc.end());
    return table_from_bits(std::move(acc), std::move(unc));
  }

 public:
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
                                               const TokenTable& base, int32_t top, int32_t x) {
    if (m_.pool().size() > (size_t{1} << 20) || states_.states() > (size_t{1} << 16) ||
        states_.transitions() > (size_t{1} << 20)) {
      m_.reset();
      states_.clear();
    }
    level_.assign(states_.states(), -2);
    level_x_ = x;
    const int32_t site = c.sites.at(0);
    const int32_t top_node = m_.pool().intern(pos, m_.pool().intern(site, -1));
    state_[0] = states_.intern(std::span<const int32_t>(&top_node, 1), false);
    auto out = std::make_shared<Thresholds>();
    out->ranks = base.uncertain_ranks;
    out->acc.assign(out->ranks.size(), kNever);
    out->unc.assign(out->ranks.size(), kNever);
    std::vector<int32_t> d(state_.size(), 0), u(state_.size(), kNever);
    d[0] = 0;
    u[0] = kNever;
    size_t depth = 0;
    std::string_view prev;
    for (size_t i = 0; i < out->ranks.size(); ++i) {
      const std::string_view t = v_.at_rank(out->ranks[i]);
      size_t l = 0;
      const size_t lim = std::min({prev.size(), t.size(), depth});
      while (l < lim && prev[l] == t[l]) ++l;
      prev = t;
      depth = l;
      while (depth < t.size() && states_.has_tops(state_[depth])) {
        const auto byte = static_cast<uint8_t>(t[depth]);
        const int32_t s = state_[depth];
        const int32_t next = states_.step(s, byte);
        int32_t exit_u = kNever;
        if (states_.end(s) && c.follow.test(byte)) exit_u = d[depth - 1];
        u[depth + 1] = std::min(u[depth], exit_u);
        if (states_.has_tops(next)) {
          const int32_t lv = level(next);
          if (lv < 0) return nullptr;
          d[depth + 1] = top - lv;
        }
        state_[depth + 1] = next;
        ++depth;
      }
      const int32_t s = state_[depth];
      int32_t a = kNever, un = u[depth];
      if (depth == t.size()) {
        if (states_.has_tops(s)) a = d[depth];
        if (states_.end(s)) a = std::min(a, d[depth - 1]);
      } else if (states_.end(s) && c.follow.test(static_cast<uint8_t>(t[depth]))) {
        un = std::min(un, d[depth - 1]);
      }
      // The count k allows a path that starts d more x when d <= k - 1.
      out->acc[i] = static_cast<uint8_t>(a == kNever ? kNever : a + 1);
      out->unc[i] = static_cast<uint8_t>(un == kNever ? kNever : un + 1);
    }
    index(*out, base);
    return out;
  }

  void index(Thresholds& thr, const TokenTable& base) {
    const size_t words = static_cast<size_t>(bitmask_words(static_cast<int32_t>(v_.bytes.size())));
    thr.base_bits.assign(words, 0);
    or_accepted_bits(base, thr.base_bits);
    thr.base_is_list = base.storage == TokenTable::Storage::kAcceptedList;
    if (thr.base_is_list) thr.base_ids = base.ids;
    thr.all_bits = thr.base_bits;
    thr.acc_off.assign(kNever + 1, 0);
    for (uint8_t a : thr.acc) {
      if (a != kNever) ++thr.acc_off[a];
    }
    for (size_t k = 1; k < thr.acc_off.size(); ++k) thr.acc_off[k] += thr.acc_off[k - 1];
    thr.acc_ids.assign(thr.acc_off[kNever - 1], 0);
    std::vector<uint32_t> fill(thr.acc_off.size(), 0);
    for (size_t k = 1; k < fill.size(); ++k) fill[k] = thr.acc_off[k - 1];
    for (size_t i = 0; i < thr.ranks.size(); ++i) {
      if (thr.unc[i] != kNever && thr.unc[i] < thr.acc[i]) {
        thr.maybe_unc.push_back(static_cast<uint32_t>(i));
      }
      const uint8_t a = thr.acc[i];
      if (a == kNever) continue;
      const int32_t id = v_.sorted[static_cast<size_t>(thr.ranks[i])];
      thr.acc_ids[fill[a]++] = id;
      thr.all_bits[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
    }
  }

  // The table of `pos` under the chain frame h_k from `thr` (base's accepted tokens stay): the
  // accepted set from whichever is shorter, the ids accepted at k or those accepted only above.
  // With `max_len`, tokens longer than that stay uncertain (own accepted ones stay accepted).
  std::shared_ptr<const TokenTable> table_from_thresholds(const Thresholds& thr, int32_t k,
                                                          size_t max_len = SIZE_MAX) {
    const size_t upto = thr.acc_off[static_cast<size_t>(k)];
    const size_t total = thr.acc_ids.size();
    if (max_len == SIZE_MAX && thr.base_is_list &&
        thr.base_ids.size() + upto <= thr.base_bits.size()) {
      // Few accepted ids (a rare first byte): a short list, no bitmask.
      std::vector<int32_t> ids(thr.base_ids);
      ids.insert(ids.end(), thr.acc_ids.begin(),
                 thr.acc_ids.begin() + static_cast<std::ptrdiff_t>(upto));
      std::vector<int32_t> unc;
      for (uint32_t i : thr.maybe_unc) {
        if (thr.acc[i] > k && thr.unc[i] <= k) unc.push_back(thr.ranks[i]);
      }
      return make_table(std::move(ids), std::move(unc));
    }
    std::vector<uint32_t> acc;
    if (upto <= total - upto) {
      acc = thr.base_bits;
      for (size_t j = 0; j < upto; ++j) {
        const int32_t id = thr.acc_ids[j];
        acc[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      }
    } else {
      acc = thr.all_bits;
      for (size_t j = upto; j < total; ++j) {
        const int32_t id = thr.acc_ids[j];
        acc[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      }
    }
    std::vector<int32_t> unc;
    if (max_len < TokenizerInfo::Impl::kShortMasks) {
      const auto& shorts = v_.short_masks[max_len];
      for (size_t i = 0; i < acc.size(); ++i) acc[i] = (acc[i] & shorts[i]) | thr.base_bits[i];
      for (size_t i = 0; i < thr.ranks.size(); ++i) {
        const auto r = static_cast<size_t>(thr.ranks[i]);
        if (v_.sorted_off[r + 1] - v_.sorted_off[r] > max_len ||
            (thr.acc[i] > k && thr.unc[i] <= k)) {
          unc.push_back(thr.ranks[i]);
        }
      }
      return table_from_bits(std::move(acc), std::move(unc));
    }
    for (uint32_t i : thr.maybe_unc) {
      if (thr.acc[i] > k && thr.unc[i] <= k) unc.push_back(thr.ranks[i]);
    }
    return table_from_bits(std::move(acc), std::move(unc));
  }

 private:
  // The chain level of state s's stacks (see thresholds): -1 when they differ.
  int32_t level(int32_t s) {
    const auto si = static_cast<size_t>(s);
    if (level_.size() <= si) level_.resize(states_.states(), -2);
    if (level_[si] != -2) return level_[si];
    int32_t lv = -2;
    for (int32_t t : states_.tops(s)) {
      int32_t v = t;
      while (m_.pool()[v].parent >= 0) v = m_.pool()[v].parent;
      const int32_t p = m_.pool()[v].pos;
      const Automaton::Elem& e = a_.elems[static_cast<size_t>(p)];
      const auto r = static_cast<size_t>(e.rule);
      int32_t here = 1;  // inside the last x (h_1 calls it without a frame)
      if (a_.repeat_left[r] > 0 && p == a_.alt_begins[r][0] && e.kind == Automaton::kRule &&
          e.target == level_x_) {
        here = a_.repeat_left[r];
      }
      if (lv == -2) {
        lv = here;
      } else if (lv != here) {
        lv = -1;
        break;
      }
    }
    level_[si] = static_cast<int16_t>(lv);
    return lv;
  }

  // A table from its accepted ids as a bitmask and its uncertain ranks (ascending).
  std::shared_ptr<const TokenTable> table_from_bits(std::vector<uint32_t> acc,
                                                    std::vector<int32_t> unc) {
    const size_t words = acc.size();
    auto table = std::make_shared<TokenTable>();
    size_t n_acc = 0;
    for (size_t i = 0; i + 1 < words; i += 2) {
      n_acc += popcount64(static_cast<uint64_t>(acc[i + 1]) << 32 | acc[i]);
    }
    if (words % 2) n_acc += popcount64(acc[words - 1]);
    const size_t rejected = v_.sorted.size() - n_acc - unc.size();
    table->accepted_count = static_cast<int32_t>(n_acc);
    table->rejected_count = static_cast<int32_t>(rejected);
    auto ids_of = [&](const std::vector<uint32_t>& bits, std::vector<int32_t>& out) {
      for (size_t i = 0; i < bits.size(); ++i) {
        for (uint32_t b = bits[i]; b; b &= b - 1) {
          out.push_back(static_cast<int32_t>(i * 32 + static_cast<size_t>(__builtin_ctz(b))));
        }
      }
    };
    if (n_acc <= words && n_acc <= rejected) {
      table->storage = TokenTable::Storage::kAcceptedList;
      ids_of(acc, table->ids);
    } else if (rejected <= words) {
      table->storage = TokenTable::Storage::kRejectedList;
      scratch_bits_.assign(v_.byte_token_mask.begin(), v_.byte_token_mask.end());
      for (size_t i = 0; i < words; ++i) scratch_bits_[i] &= ~acc[i];
      for (int32_t r : unc) {
        const int32_t id = v_.sorted[static_cast<size_t>(r)];
        scratch_bits_[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      }
      ids_of(scratch_bits_, table->ids);
    } else {
      table->storage = TokenTable::Storage::kAcceptedBitmask;
      table->accepted_bits = std::move(acc);
    }
    table->uncertain_ranks = std::move(unc);
    return table;
  }

  // Appends the ids `t` accepts.
  void append_accepted(const TokenTable& t, std::vector<int32_t>& out) {
    switch (t.storage) {
      case TokenTable::Storage::kAcceptedList:
        out.insert(out.end(), t.ids.begin(), t.ids.end());
        break;
      case TokenTable::Storage::kAcceptedBitmask:
        for (size_t i = 0; i < t.accepted_bits.size(); ++i) {
          for (uint32_t bits = t.accepted_bits[i]; bits; bits &= bits - 1) {
            out.push_back(static_cast<int32_t>(i * 32 + static_cast<size_t>(__builtin_ctz(bits))));
          }
        }
        break;
      case TokenTable::Storage::kRejectedList: {
        is_rejected_.assign(v_.bytes.size(), 0);
        for (int32_t id : t.ids) is_rejected_[static_cast<size_t>(id)] = 1;
        for (int32_t r : t.uncertain_ranks) {
          is_rejected_[static_cast<size_t>(v_.sorted[static_cast<size_t>(r)])] = 1;
        }
        for (int32_t id : v_.sorted) {
          if (!is_rejected_[static_cast<size_t>(id)]) out.push_back(id);
        }
        break;
      }
    }
  }

  std::shared_ptr<const TokenTable> make_table(std::vector<int32_t> accepted,
                                               std::vector<int32_t> uncertain) {
    auto table = std::make_shared<TokenTable>();
    table->uncertain_ranks = std::move(uncertain);
    const auto n = static_cast<int32_t>(v_.bytes.size());
    const size_t words = static_cast<size_t>(bitmask_words(n));
    const size_t rejected = v_.sorted.size() - accepted.size() - table->uncertain_ranks.size();
    table->accepted_count = static_cast<int32_t>(accepted.size());
    table->rejected_count = static_cast<int32_t>(rejected);
    if (accepted.size() <= words && accepted.size() <= rejected) {
      table->storage = TokenTable::Storage::kAcceptedList;
      if (accepted.size() <= 256) {
        std::sort(accepted.begin(), accepted.end());
        table->ids = std::move(accepted);
      } else {
        // In id order through a bitmask: a pass over bitmask_words words costs less than
        // sorting a few thousand ids (the walk yields them in rank order).
        scratch_bits_.assign(words, 0);
        for (int32_t id : accepted) scratch_bits_[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
        table->ids.reserve(accepted.size());
        for (size_t i = 0; i < words; ++i) {
          for (uint32_t b = scratch_bits_[i]; b; b &= b - 1) {
            table->ids.push_back(
                static_cast<int32_t>(i * 32 + static_cast<size_t>(__builtin_ctz(b))));
          }
        }
      }
    } else if (rejected <= words) {
      table->storage = TokenTable::Storage::kRejectedList;
      // Through a bitmask of the tokens with bytes (words, not a byte per id).
      scratch_bits_.assign(v_.byte_token_mask.begin(), v_.byte_token_mask.end());
      for (int32_t id : accepted) scratch_bits_[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      for (int32_t r : table->uncertain_ranks) {
        const int32_t id = v_.sorted[static_cast<size_t>(r)];
        scratch_bits_[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      }
      table->ids.reserve(rejected);
      for (size_t i = 0; i < words; ++i) {
        for (uint32_t b = scratch_bits_[i]; b; b &= b - 1) {
          table->ids.push_back(
              static_cast<int32_t>(i * 32 + static_cast<size_t>(__builtin_ctz(b))));
        }
      }
    } else {
      table->storage = TokenTable::Storage::kAcceptedBitmask;
      table->accepted_bits.assign(words, 0);
      for (int32_t id : accepted) {
        table->accepted_bits[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      }
    }
    return table;
  }

  const Automaton& a_;
  const TokenizerInfo::Impl& v_;
  StackMachine m_;
  StateCache states_;
  std::vector<int32_t> state_;
  std::vector<uint8_t> unc_;  // by depth: the prefix already reached past the known frames
  std::vector<uint8_t> is_rejected_;
  std::vector<uint32_t> scratch_bits_;
  std::vector<int16_t> level_;  // by state: level(s), -2 not computed
  int32_t level_x_ = -1;        // the x the levels are for
};

std::atomic<int32_t> g_context_threshold{16};
std::atomic<int32_t> g_context_depth{8};
std::atomic<int32_t> g_loop_after{2048};

}  // namespace

int32_t context_table_depth() {
  return g_context_depth.load(std::memory_order_relaxed);
}
void set_context_table_depth(int32_t n) {
  g_context_depth.store(n, std::memory_order_relaxed);
}
int32_t loop_classify_after() {
  return g_loop_after.load(std::memory_order_relaxed);
}
void set_loop_classify_after(int32_t n) {
  g_loop_after.store(n, std::memory_order_relaxed);
}
int32_t context_table_threshold() {
  return g_context_threshold.load(std::memory_order_relaxed);
}
void set_context_table_threshold(int32_t n) {
  g_context_threshold.store(n, std::memory_order_relaxed);
}

struct CompiledGrammar::ContextTables {
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const TokenTable>> map;
  std::vector<std::unique_ptr<Classifier>> idle;  // classifiers not in use
  // Per (position, top frame of a repetition chain, bottom): Classifier::thresholds (null: the
  // chain's counts are not determined by the bytes, tables are walked per count).
  std::unordered_map<std::string, std::shared_ptr<const Classifier::Thresholds>> thresholds;
};

struct CompiledGrammar::CheckMemo {
  static constexpr size_t kShards = 16;
  // Per shard: at most this many states and remembered ids (about 16 MB in all).
  static constexpr size_t kMaxEntries = 4096, kMaxIds = size_t{1} << 18;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<const std::vector<int32_t>>> map;
    size_t ids = 0;
  };
  Shard shards[kShards];
  Shard& shard(const std::string& key) { return shards[std::hash<std::string>{}(key) % kShards]; }
};

CompiledGrammar::CompiledGrammar()
    : context_(std::make_unique<ContextTables>()), checked_(std::make_unique<CheckMemo>()) {}
CompiledGrammar::~CompiledGrammar() = default;

std::shared_ptr<const std::vector<int32_t>> CompiledGrammar::find_checked(
    const std::string& key) const {
  CheckMemo::Shard& sh = checked_->shard(key);
  std::lock_guard<std::mutex> lock(sh.mu);
  auto it = sh.map.find(key);
  return it == sh.map.end() ? nullptr : it->second;
}

size_t CompiledGrammar::checked_states() const {
  size_t n = 0;
  for (CheckMemo::Shard& sh : checked_->shards) {
    std::lock_guard<std::mutex> lock(sh.mu);
    n += sh.map.size();
  }
  return n;
}

std::shared_ptr<const std::vector<int32_t>> CompiledGrammar::keep_checked(
    std::string key, std::vector<int32_t> ids) const {
  auto value = std::make_shared<const std::vector<int32_t>>(std::move(ids));
  CheckMemo::Shard& sh = checked_->shard(key);
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.map.size() >= CheckMemo::kMaxEntries || sh.ids > CheckMemo::kMaxIds) {
    sh.map.clear();
    sh.ids = 0;
  }
  auto [it, fresh] = sh.map.emplace(std::move(key), value);
  if (fresh) sh.ids += value->size() + 1;
  return it->second;
}

std::shared_ptr<const TokenTable> CompiledGrammar::context_table(int32_t pos,
                                                                 std::span<const int32_t> sites,
                                                                 bool bottom) const {
  // A frame in a long repetition chain (h_k, k > kRepeatCap) is replaced by the same frame in
  // h_kRepeatCap: tokens of fewer than kRepeatCap bytes cannot tell them apart, and longer tokens
  // stay uncertain in such a table (checked against the real stacks), so x{1,64} needs at most
  // kRepeatCap tables instead of 64.
  constexpr int32_t kRepeatCap = 64;
  static_assert(kRepeatCap < static_cast<int32_t>(TokenizerInfo::Impl::kShortMasks));
  ContextTables& c = *context_;
  auto take_classifier = [&] {
    std::unique_ptr<Classifier> cl;
    {
      std::lock_guard<std::mutex> lock(c.mu);
      if (!c.idle.empty()) {
        cl = std::move(c.idle.back());
        c.idle.pop_back();
      }
    }
    if (!cl) cl = std::make_unique<Classifier>(automaton, vocab->impl());
    return cl;
  };
  auto give_back = [&](std::unique_ptr<Classifier> cl) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.idle.push_back(std::move(cl));
  };
  auto keep = [&](std::string key, std::shared_ptr<const TokenTable> table) {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.map.size() >= 8192) {
      c.map.clear();
      c.thresholds.clear();
    }
    return c.map.emplace(std::move(key), std::move(table)).first->second;
  };
  const TokenTable* own = tables[static_cast<size_t>(pos)].get();
  // A repetition frame h_k alone (the frame the matcher meets first, at every count): the table
  // is a filter over per-token thresholds (the smallest count at which a token is accepted /
  // uncertain) from one walk under the chain's top frame, when the bytes fix how many x a token
  // starts (checked per state); any count of a chain of up to 250 costs no walk. With `long_unc`
  // tokens of kRepeatCap bytes or more stay uncertain: the same table serves every count from
  // kRepeatCap up (the base of capped contexts). Null where it does not apply.
  auto alone = [&](int32_t s, bool at_bottom, bool long_unc) -> std::shared_ptr<const TokenTable> {
    const auto r = static_cast<size_t>(automaton.elems[static_cast<size_t>(s)].rule);
    const Automaton::Elem& e = automaton.elems[static_cast<size_t>(s)];
    size_t top = r;
    while (automaton.repeat_prev[top] >= 0) top = static_cast<size_t>(automaton.repeat_prev[top]);
    if (automaton.repeat_left[r] < 1 || s != automaton.alt_begins[r][0] ||
        e.kind != Automaton::kRule || automaton.nullable[static_cast<size_t>(e.target)] ||
        automaton.repeat_left[top] >= Classifier::kNever - 4 ||
        (!at_bottom && !(automaton.follow[r] == automaton.follow[top]))) {
      return nullptr;
    }
    std::string key;
    key.append(reinterpret_cast<const char*>(&pos), sizeof pos);
    key.append(reinterpret_cast<const char*>(&s), sizeof s);
    key.push_back(at_bottom ? 'T' : 'F');
    key.push_back(long_unc ? 'L' : 'A');
    std::string tkey;
    tkey.append(reinterpret_cast<const char*>(&pos), sizeof pos);
    tkey.append(reinterpret_cast<const char*>(&automaton.alt_begins[top][0]), sizeof(int32_t));
    tkey.push_back(at_bottom ? 'T' : 'F');
    std::shared_ptr<const Classifier::Thresholds> thr;
    bool known = false;
    {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.map.find(key);
      if (it != c.map.end()) return it->second;
      auto tit = c.thresholds.find(tkey);
      if (tit != c.thresholds.end()) {
        known = true;
        thr = tit->second;
      }
    }
    auto cl = take_classifier();
    if (!known) {
      Context top_ctx;
      top_ctx.sites = {automaton.alt_begins[top][0]};
      top_ctx.bottom = at_bottom;
      if (!at_bottom) top_ctx.follow = automaton.follow[top];
      thr = cl->thresholds(pos, top_ctx, *own, automaton.repeat_left[top], e.target);
      std::lock_guard<std::mutex> lock(c.mu);
      c.thresholds.emplace(std::move(tkey), thr);
    }
    std::shared_ptr<const TokenTable> table;
    if (thr) {
      table = cl->table_from_thresholds(*thr, automaton.repeat_left[r],
                                        long_unc ? static_cast<size_t>(kRepeatCap - 1) : SIZE_MAX);
    }
    give_back(std::move(cl));
    return table ? keep(std::move(key), std::move(table)) : nullptr;
  };
  if (sites.size() == 1) {
    if (auto t = alone(sites[0], bottom, false)) return t;
  }
  Context ctx;
  ctx.sites.assign(sites.begin(), sites.end());
  bool capped = false;
  for (int32_t& s : ctx.sites) {
    auto r = static_cast<size_t>(automaton.elems[static_cast<size_t>(s)].rule);
    if (automaton.repeat_left[r] <= kRepeatCap) continue;
    const int32_t offset = s - automaton.alt_begins[r][0];
    while (automaton.repeat_left[r] > kRepeatCap) {
      r = static_cast<size_t>(automaton.repeat_next[r]);
    }
    s = automaton.alt_begins[r][0] + offset;
    capped = true;
  }
  std::string key;
  key.append(reinterpret_cast<const char*>(&pos), sizeof pos);
  for (int32_t s : ctx.sites) key.append(reinterpret_cast<const char*>(&s), sizeof s);
  key.push_back(bottom ? 'T' : 'F');
  key.push_back(capped ? 'C' : 'E');
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.map.find(key);
    if (it != c.map.end()) return it->second;
  }
  // Built without the lock: other sequences of this grammar keep going (two threads may both
  // build the same new context; the first to finish is kept).
  ctx.bottom = bottom;
  if (!bottom) {
    const int32_t last = ctx.sites.empty() ? pos : ctx.sites.back();
    ctx.follow =
        automaton.follow[static_cast<size_t>(automaton.elems[static_cast<size_t>(last)].rule)];
  }
  // A frame in a short repetition chain (h_k, k below the chain's top and at most kRepeatCap).
  int32_t chain_at = -1, k = 0;
  size_t up = 0;
  for (size_t i = 0; i < ctx.sites.size() && !capped && chain_at < 0; ++i) {
    const int32_t s = ctx.sites[i];
    auto r = static_cast<size_t>(automaton.elems[static_cast<size_t>(s)].rule);
    if (automaton.repeat_left[r] < 1 || s != automaton.alt_begins[r][0]) continue;
    if (automaton.nullable[static_cast<size_t>(automaton.elems[static_cast<size_t>(s)].target)]) {
      continue;
    }
    up = r;
    while (automaton.repeat_left[up] <= kRepeatCap && automaton.repeat_prev[up] >= 0) {
      up = static_cast<size_t>(automaton.repeat_prev[up]);
    }
    if (up == r) continue;
    chain_at = static_cast<int32_t>(i);
    k = automaton.repeat_left[r];
  }
  // The base: the table with the outermost frame left unknown (itself a context table), so a
  // new context walks only the tokens that reach that frame (inside a string called from many
  // places: the few that close the string), not every token the position's own table leaves
  // uncertain.
  // (A capped context is shared by every count above kRepeatCap, so its base must not depend on
  // the count: the frame alone with long tokens uncertain, or the position's own table.)
  std::shared_ptr<const TokenTable> shallower;
  const TokenTable* base = own;
  if (sites.size() > 1 && !capped) {
    shallower = context_table(pos, sites.first(sites.size() - 1), false);
    base = shallower.get();
  } else if (sites.size() > 1 && (shallower = alone(ctx.sites[0], false, true))) {
    base = shallower.get();
  }
  // Tokens of at most k bytes have the class they have under a higher frame of the chain, so
  // only the longer ones are walked (only worth it when the base leaves many tokens to walk).
  std::shared_ptr<const TokenTable> ref;
  if (chain_at >= 0 && base->uncertain_ranks.size() > 4096) {
    std::vector<int32_t> higher(ctx.sites.begin(), ctx.sites.end());
    higher[static_cast<size_t>(chain_at)] = automaton.alt_begins[up][0];
    ref = context_table(pos, higher, bottom);
  }
  if (base->uncertain_ranks.empty() && !ref) {
    // Nothing left to walk: the base is the table.
    return keep(std::move(key), shallower ? shallower : tables[static_cast<size_t>(pos)]);
  }
  auto cl = take_classifier();
  auto table = cl->classify(pos, ctx, base, capped ? static_cast<size_t>(kRepeatCap - 1) : SIZE_MAX,
                            ref.get(), ref ? static_cast<size_t>(k) : 0);
  give_back(std::move(cl));
  return keep(std::move(key), std::move(table));
}

TableCacheStats table_cache_stats() {
  TableCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.hits, c.misses, c.map.size()};
}

void clear_table_cache() {
  TableCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.map.clear();
  c.grammars.clear();
}

std::shared_ptr<const CompiledGrammar> compile_gbnf(std::string_view gbnf,
                                                    std::shared_ptr<const TokenizerInfo> vocab,
                                                    std::string_view root) {
  if (!vocab) throw GrammarError("grammar: no vocabulary to compile against");
  Grammar g = parse_gbnf(gbnf, root);
  auto out = std::make_shared<CompiledGrammar>();
  out->vocab = vocab;
  out->automaton = build_automaton(g);
  const Automaton& a = out->automaton;
  const TokenizerInfo::Impl& v = vocab->impl();
  TableCache& c = cache();
  std::string grammar_key;
  grammar_key.append(reinterpret_cast<const char*>(&v.serial), sizeof v.serial);
  grammar_key.append(root);
  grammar_key.push_back('\0');
  grammar_key.append(gbnf);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.grammars.find(grammar_key);
    if (it != c.grammars.end() && it->second->size() == a.elems.size()) {
      ++c.hits;
      out->tables = *it->second;
      return out;
    }
  }
  out->tables.resize(a.elems.size());
  std::vector<std::string> enc(a.elems.size());
  for (size_t p = 0; p < a.elems.size(); ++p) {
    if (a.elems[p].kind == Automaton::kBytes) append_ranges(enc[p], a.elems[p].bytes);
  }
  std::unique_ptr<Classifier> classifier;
  std::unordered_map<std::string, std::shared_ptr<const TokenTable>> local;
  for (size_t p = 0; p < a.elems.size(); ++p) {
    if (a.elems[p].kind != Automaton::kBytes) continue;
    const auto pos = static_cast<int32_t>(p);
    const Context ctx = context_of(a, pos);
    std::string key = position_key(a, pos, ctx, v.serial, enc);
    auto lit = local.find(key);
    if (lit != local.end()) {
      out->tables[p] = lit->second;
      continue;
    }
    std::shared_ptr<const TokenTable> table;
    {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.map.find(key);
      if (it != c.map.end()) {
        table = it->second;
        ++c.hits;
      } else {
        ++c.misses;
      }
    }
    if (!table) {
      if (!classifier) classifier = std::make_unique<Classifier>(a, v);
      table = classifier->classify(pos, ctx);
      std::lock_guard<std::mutex> lock(c.mu);
      if (c.map.size() >= kMaxCacheEntries) c.map.clear();
      c.map.emplace(key, table);
    }
    out->tables[p] = table;
    local.emplace(std::move(key), std::move(table));
  }
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.grammars.size() >= kMaxGrammarEntries) c.grammars.clear();
  c.grammars.emplace(std::move(grammar_key), std::make_shared<const Tables>(out->tables));
  return out;
}

}  // namespace inferd::grammar
