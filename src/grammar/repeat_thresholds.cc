// Repetition chains under the classifier (classifier.h): for a frame h_k of the chain a bounded
// repetition x{m,n} compiles to, one walk under the chain's top frame gives every token the
// smallest count at which it is accepted or uncertain; the table of any count is then a filter
// over those thresholds, without a walk.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "grammar/classifier.h"

namespace inferd::grammar {

std::shared_ptr<const Classifier::Thresholds> Classifier::thresholds(int32_t pos, const Context& c,
                                                                     const TokenTable& base,
                                                                     int32_t top, int32_t x) {
  bound_states();
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

void Classifier::index(Thresholds& thr, const TokenTable& base) {
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

std::shared_ptr<const TokenTable> Classifier::table_from_thresholds(const Thresholds& thr,
                                                                    int32_t k, size_t max_len) {
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

int32_t Classifier::level(int32_t s) {
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

}  // namespace inferd::grammar
