#include "router/routing_policy.h"

#include <algorithm>

#include "core/error.h"

namespace inferd::router {

Policy parse_policy(const std::string& name) {
  std::string n = name;
  std::replace(n.begin(), n.end(), '-', '_');
  if (n == "cache_aware") return Policy::kCacheAware;
  if (n == "round_robin") return Policy::kRoundRobin;
  if (n == "least_loaded") return Policy::kLeastLoaded;
  if (n == "random") return Policy::kRandom;
  fail("--policy '{}': expected cache_aware, round_robin, least_loaded or random", name);
}

const char* to_string(Policy p) {
  switch (p) {
    case Policy::kCacheAware:
      return "cache_aware";
    case Policy::kRoundRobin:
      return "round_robin";
    case Policy::kLeastLoaded:
      return "least_loaded";
    case Policy::kRandom:
      return "random";
  }
  return "?";
}

RoutingPolicy::RoutingPolicy(PolicyConfig config)
    : config_(config), index_(config.max_tree_size), rng_(0x5eed) {}

size_t RoutingPolicy::least_loaded(const std::vector<Candidate>& c) const {
  // Least load; among equals the replica holding the fewest prefixes (so that new prefixes
  // spread), then the first after the round-robin cursor (so that ties rotate).
  size_t best = 0;
  auto better = [&](size_t a, size_t b) {
    if (c[a].load != c[b].load) return c[a].load < c[b].load;
    const size_t ha = index_.chars_held(c[a].id), hb = index_.chars_held(c[b].id);
    if (ha != hb) return ha < hb;
    const size_t n = c.size(), off = size_t(next_ % n);
    return (a + n - off) % n < (b + n - off) % n;
  };
  for (size_t i = 1; i < c.size(); ++i)
    if (better(i, best)) best = i;
  return best;
}

Decision RoutingPolicy::choose(const std::vector<Candidate>& c, std::string_view key) {
  INFERD_CHECK(!c.empty(), "RoutingPolicy::choose needs a candidate");
  Decision d;
  switch (config_.policy) {
    case Policy::kRoundRobin:
      d = {c[size_t(next_++ % c.size())].id, "round_robin", 0};
      return d;
    case Policy::kRandom:
      d = {c[size_t(rng_.next_u64() % c.size())].id, "random", 0};
      return d;
    case Policy::kLeastLoaded:
      d = {c[least_loaded(c)].id, "least_loaded", 0};
      ++next_;
      return d;
    case Policy::kCacheAware:
      break;
  }
  const size_t least = least_loaded(c);
  ++next_;
  std::vector<uint32_t> ids;
  ids.reserve(c.size());
  for (const auto& x : c) ids.push_back(x.id);
  const std::vector<PrefixIndex::Match> m = index_.match(key, ids);
  size_t best = 0;
  for (size_t i = 1; i < c.size(); ++i)
    if (m[i].chars > m[best].chars || (m[i].chars == m[best].chars && c[i].load < c[best].load))
      best = i;
  const size_t total = index_.indexed_chars(key);
  const bool good_match =
      m[best].chars > 0 && double(m[best].chars) >= config_.cache_threshold * double(total);
  if (good_match) {
    const Candidate& b = c[best];
    const Candidate& l = c[least];
    const bool busier = b.load - l.load > config_.balance_abs_threshold &&
                        b.load > config_.balance_rel_threshold * l.load;
    const bool kv_full = b.kv_usage >= config_.kv_usage_limit && l.kv_usage < b.kv_usage;
    if ((busier || kv_full) && best != least) {
      d = {l.id, "load_balanced", m[least].chars};
    } else {
      d = {b.id, "cache_hit", m[best].chars};
    }
  } else {
    d = {c[least].id, "cache_miss", m[least].chars};
  }
  index_.insert(key, d.id);
  return d;
}

}  // namespace inferd::router
