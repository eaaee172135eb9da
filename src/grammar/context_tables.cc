// Context tables (context_tables.h): the table of a byte-set position under the real frames below
// it, built from a coarser table (the same frames less the outermost one) by walking only the
// tokens that one left uncertain; repetition frames get tables from per-count thresholds, long
// counts share a capped table, short counts borrow the class of short tokens from a higher count.
// Also the knobs that say when a matcher uses them.
#include "grammar/context_tables.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/classifier.h"
#include "grammar/compiled_grammar.h"

namespace inferd::grammar {

namespace {

std::atomic<int32_t> g_context_threshold{16};
std::atomic<int32_t> g_context_depth{8};
std::atomic<int32_t> g_loop_after{2048};

// A frame in a long repetition chain (h_k, k > kRepeatCap) is replaced by the same frame in
// h_kRepeatCap: tokens of fewer than kRepeatCap bytes cannot tell them apart, and longer tokens
// stay uncertain in such a table (checked against the real stacks), so x{1,64} needs at most
// kRepeatCap tables instead of 64.
constexpr int32_t kRepeatCap = 64;
static_assert(kRepeatCap < static_cast<int32_t>(TokenizerInfo::Impl::kShortMasks));

// Replaces every frame of `sites` in a repetition chain deeper than kRepeatCap by the same frame
// in h_kRepeatCap; returns whether one was replaced.
bool cap_long_repetitions(const Automaton& a, std::vector<int32_t>& sites) {
  bool capped = false;
  for (int32_t& s : sites) {
    auto r = static_cast<size_t>(a.elems[static_cast<size_t>(s)].rule);
    if (a.repeat_left[r] <= kRepeatCap) continue;
    const int32_t offset = s - a.alt_begins[r][0];
    while (a.repeat_left[r] > kRepeatCap) r = static_cast<size_t>(a.repeat_next[r]);
    s = a.alt_begins[r][0] + offset;
    capped = true;
  }
  return capped;
}

// The key of a context table: the position, the frames, bottom and capped.
std::string context_key(int32_t pos, const std::vector<int32_t>& sites, bool bottom, bool capped) {
  std::string key;
  key.append(reinterpret_cast<const char*>(&pos), sizeof pos);
  for (int32_t s : sites) key.append(reinterpret_cast<const char*>(&s), sizeof s);
  key.push_back(bottom ? 'T' : 'F');
  key.push_back(capped ? 'C' : 'E');
  return key;
}

// The first frame of `sites` in a short repetition chain (h_k, k below the chain's top and at
// most kRepeatCap): its index (`at`, -1 when none), k, and the rule of the chain's frame above
// kRepeatCap or its top (`up`).
struct ChainFrame {
  int32_t at = -1, k = 0;
  size_t up = 0;
};
ChainFrame short_chain_frame(const Automaton& a, const std::vector<int32_t>& sites) {
  ChainFrame out;
  for (size_t i = 0; i < sites.size(); ++i) {
    const int32_t s = sites[i];
    auto r = static_cast<size_t>(a.elems[static_cast<size_t>(s)].rule);
    if (a.repeat_left[r] < 1 || s != a.alt_begins[r][0]) continue;
    if (a.nullable[static_cast<size_t>(a.elems[static_cast<size_t>(s)].target)]) continue;
    size_t up = r;
    while (a.repeat_left[up] <= kRepeatCap && a.repeat_prev[up] >= 0) {
      up = static_cast<size_t>(a.repeat_prev[up]);
    }
    if (up == r) continue;
    out.at = static_cast<int32_t>(i);
    out.k = a.repeat_left[r];
    out.up = up;
    return out;
  }
  return out;
}

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

std::unique_ptr<Classifier> CompiledGrammar::ContextTables::take_classifier(
    const CompiledGrammar& g) {
  std::unique_ptr<Classifier> cl;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!idle.empty()) {
      cl = std::move(idle.back());
      idle.pop_back();
    }
  }
  if (!cl) cl = std::make_unique<Classifier>(g.automaton, g.vocab->impl());
  return cl;
}

void CompiledGrammar::ContextTables::give_back(std::unique_ptr<Classifier> cl) {
  std::lock_guard<std::mutex> lock(mu);
  idle.push_back(std::move(cl));
}

std::shared_ptr<const TokenTable> CompiledGrammar::ContextTables::find(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = map.find(key);
  return it == map.end() ? nullptr : it->second;
}

std::shared_ptr<const TokenTable> CompiledGrammar::ContextTables::keep(
    std::string key, std::shared_ptr<const TokenTable> table) {
  std::lock_guard<std::mutex> lock(mu);
  if (map.size() >= 8192) {
    map.clear();
    thresholds.clear();
  }
  return map.emplace(std::move(key), std::move(table)).first->second;
}

std::shared_ptr<const TokenTable> CompiledGrammar::ContextTables::repeat_frame_alone(
    const CompiledGrammar& g, int32_t pos, int32_t s, bool at_bottom, bool long_unc) {
  const Automaton& a = g.automaton;
  const auto r = static_cast<size_t>(a.elems[static_cast<size_t>(s)].rule);
  const Automaton::Elem& e = a.elems[static_cast<size_t>(s)];
  size_t top = r;
  while (a.repeat_prev[top] >= 0) top = static_cast<size_t>(a.repeat_prev[top]);
  if (a.repeat_left[r] < 1 || s != a.alt_begins[r][0] || e.kind != Automaton::kRule ||
      a.nullable[static_cast<size_t>(e.target)] || a.repeat_left[top] >= Classifier::kNever - 4 ||
      (!at_bottom && !(a.follow[r] == a.follow[top]))) {
    return nullptr;
  }
  std::string key;
  key.append(reinterpret_cast<const char*>(&pos), sizeof pos);
  key.append(reinterpret_cast<const char*>(&s), sizeof s);
  key.push_back(at_bottom ? 'T' : 'F');
  key.push_back(long_unc ? 'L' : 'A');
  std::string tkey;
  tkey.append(reinterpret_cast<const char*>(&pos), sizeof pos);
  tkey.append(reinterpret_cast<const char*>(&a.alt_begins[top][0]), sizeof(int32_t));
  tkey.push_back(at_bottom ? 'T' : 'F');
  std::shared_ptr<const Classifier::Thresholds> thr;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = map.find(key);
    if (it != map.end()) return it->second;
    auto tit = thresholds.find(tkey);
    if (tit != thresholds.end()) {
      known = true;
      thr = tit->second;
    }
  }
  auto cl = take_classifier(g);
  if (!known) {
    Context top_ctx;
    top_ctx.sites = {a.alt_begins[top][0]};
    top_ctx.bottom = at_bottom;
    if (!at_bottom) top_ctx.follow = a.follow[top];
    const TokenTable& own = *g.tables[static_cast<size_t>(pos)];
    thr = cl->thresholds(pos, top_ctx, own, a.repeat_left[top], e.target);
    std::lock_guard<std::mutex> lock(mu);
    thresholds.emplace(std::move(tkey), thr);
  }
  std::shared_ptr<const TokenTable> table;
  if (thr) {
    table = cl->table_from_thresholds(*thr, a.repeat_left[r],
                                      long_unc ? static_cast<size_t>(kRepeatCap - 1) : SIZE_MAX);
  }
  give_back(std::move(cl));
  return table ? keep(std::move(key), std::move(table)) : nullptr;
}

std::shared_ptr<const TokenTable> CompiledGrammar::context_table(int32_t pos,
                                                                 std::span<const int32_t> sites,
                                                                 bool bottom) const {
  ContextTables& c = *context_;
  if (sites.size() == 1) {
    if (auto t = c.repeat_frame_alone(*this, pos, sites[0], bottom, false)) return t;
  }
  Context ctx;
  ctx.sites.assign(sites.begin(), sites.end());
  const bool capped = cap_long_repetitions(automaton, ctx.sites);
  std::string key = context_key(pos, ctx.sites, bottom, capped);
  if (auto t = c.find(key)) return t;
  // Built without the lock: other sequences of this grammar keep going (two threads may both
  // build the same new context; the first to finish is kept).
  ctx.bottom = bottom;
  if (!bottom) {
    const int32_t last = ctx.sites.empty() ? pos : ctx.sites.back();
    ctx.follow =
        automaton.follow[static_cast<size_t>(automaton.elems[static_cast<size_t>(last)].rule)];
  }
  const ChainFrame chain = capped ? ChainFrame{} : short_chain_frame(automaton, ctx.sites);
  // The base: the table with the outermost frame left unknown (itself a context table), so a
  // new context walks only the tokens that reach that frame (inside a string called from many
  // places: the few that close the string), not every token the position's own table leaves
  // uncertain.
  // (A capped context is shared by every count above kRepeatCap, so its base must not depend on
  // the count: the frame alone with long tokens uncertain, or the position's own table.)
  std::shared_ptr<const TokenTable> shallower;
  const TokenTable* base = tables[static_cast<size_t>(pos)].get();
  if (sites.size() > 1 && !capped) {
    shallower = context_table(pos, sites.first(sites.size() - 1), false);
    base = shallower.get();
  } else if (sites.size() > 1 &&
             (shallower = c.repeat_frame_alone(*this, pos, ctx.sites[0], false, true))) {
    base = shallower.get();
  }
  // Tokens of at most k bytes have the class they have under a higher frame of the chain, so
  // only the longer ones are walked (only worth it when the base leaves many tokens to walk).
  std::shared_ptr<const TokenTable> ref;
  if (chain.at >= 0 && base->uncertain_ranks.size() > 4096) {
    std::vector<int32_t> higher(ctx.sites.begin(), ctx.sites.end());
    higher[static_cast<size_t>(chain.at)] = automaton.alt_begins[chain.up][0];
    ref = context_table(pos, higher, bottom);
  }
  if (base->uncertain_ranks.empty() && !ref) {
    // Nothing left to walk: the base is the table.
    return c.keep(std::move(key), shallower ? shallower : tables[static_cast<size_t>(pos)]);
  }
  auto cl = c.take_classifier(*this);
  auto table = cl->classify(pos, ctx, base, capped ? static_cast<size_t>(kRepeatCap - 1) : SIZE_MAX,
                            ref.get(), ref ? static_cast<size_t>(chain.k) : 0);
  c.give_back(std::move(cl));
  return c.keep(std::move(key), std::move(table));
}

}  // namespace inferd::grammar
