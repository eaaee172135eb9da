// How the router picks a replica for one request among those that serve its model and are healthy:
//   cache_aware   (default, as SGLang's router) the replica that holds the longest prefix of the
//                 prompt (PrefixIndex) when it covers at least `cache_threshold` of the prompt,
//                 unless that replica is much busier than the least loaded one (load above the
//                 least loaded's by more than `balance_abs_threshold` requests and more than
//                 `balance_rel_threshold` times it, or its KV cache is nearly full); otherwise
//                 the least loaded replica (ties: the one holding the fewest prefixes). The
//                 chosen replica is then recorded as holding the prompt.
//   round_robin   each candidate in turn;
//   least_loaded  the least loaded;
//   random        uniformly at random.
// Load = max(requests the router has open on the replica, its running + waiting requests).
// Not thread-safe: the replica table calls it under its mutex.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "router/prefix_index.h"

namespace inferd::router {

enum class Policy { kCacheAware, kRoundRobin, kLeastLoaded, kRandom };

// "cache_aware" | "round_robin" | "least_loaded" | "random" ('-' accepted for '_'); throws Error.
Policy parse_policy(const std::string& name);
const char* to_string(Policy p);

struct PolicyConfig {
  Policy policy = Policy::kCacheAware;
  double cache_threshold = 0.5;            // fraction of the prompt a match must cover
  double balance_abs_threshold = 32;       // requests
  double balance_rel_threshold = 1.5;      // times the least loaded
  double kv_usage_limit = 0.95;            // a replica at or above this KV usage counts as busy
  size_t max_tree_size = size_t(1) << 18;  // PrefixIndex capacity (entries)
};

struct Candidate {
  uint32_t id = 0;
  double load = 0;
  double kv_usage = 0;
};

struct Decision {
  uint32_t id = 0;
  // cache_hit | cache_miss | load_balanced | round_robin | least_loaded | random
  const char* reason = "";
  size_t matched_chars = 0;
};

class RoutingPolicy {
 public:
  explicit RoutingPolicy(PolicyConfig config);
  // `candidates` is not empty. `key`: the request's rendered-prompt text (see prompt_key).
  Decision choose(const std::vector<Candidate>& candidates, std::string_view key);
  void forget_replica(uint32_t id) { index_.remove_replica(id); }
  const PrefixIndex& index() const { return index_; }
  const PolicyConfig& config() const { return config_; }

 private:
  size_t least_loaded(const std::vector<Candidate>& c) const;

  PolicyConfig config_;
  PrefixIndex index_;
  uint64_t next_ = 0;  // round robin
  Rng rng_;
};

}  // namespace inferd::router
