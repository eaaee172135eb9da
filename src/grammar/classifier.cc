// The classifier's walks (classifier.h): every token of a byte-set position, or only the tokens a
// coarser table left uncertain, stepped through the automaton in trie order (a dead prefix
// settles every token under it), and the looping states of a string whose tokens are classified
// by their bytes alone.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/classifier.h"

namespace inferd::grammar {

void Classifier::bound_states() {
  if (m_.pool().size() > (size_t{1} << 20) || states_.states() > (size_t{1} << 16) ||
      states_.transitions() > (size_t{1} << 20)) {
    m_.reset();
    states_.clear();
  }
}

std::shared_ptr<const TokenTable> Classifier::classify(int32_t pos, const Context& c,
                                                       const TokenTable* base, size_t max_len,
                                                       const TokenTable* ref, size_t ref_len) {
  bound_states();
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
      unc_[depth + 1] = static_cast<uint8_t>(unc_[depth] | (states_.end(s) && c.follow.test(byte)));
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
    const size_t words = static_cast<size_t>(bitmask_words(static_cast<int32_t>(v_.bytes.size())));
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

Classifier::Loop Classifier::find_loop(int32_t s0, const Context& c) {
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

}  // namespace inferd::grammar
