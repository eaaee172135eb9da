// The runner's step profile (step_profile.h).
#include "runner/step_profile.h"

#include <fmt/format.h>

#include <algorithm>

namespace inferd {

void StepProfile::add(bool decode, int32_t num_tokens, double ms) {
  int32_t bound = 1;
  while (bound < num_tokens) bound *= 4;
  Bucket& b = buckets_[{decode ? 0 : 1, bound}];
  ++b.steps;
  b.tokens += num_tokens;
  b.ms += ms;
}

void StepProfile::add_verify(int32_t num_tokens, double ms) {
  Bucket& b = buckets_[{2, num_tokens}];
  ++b.steps;
  b.tokens += num_tokens;
  b.ms += ms;
}

std::string StepProfile::to_string() const {
  std::string s;
  for (const auto& [key, v] : buckets_) {
    const char* kind = key.first == 0 ? "decode" : key.first == 1 ? "mixed/prefill" : "verify";
    s += fmt::format("{} steps of {} {} tokens: {} steps, {} tokens, {:.1f} s, {:.2f} ms a step\n",
                     kind, key.first == 2 ? "exactly" : "<=", key.second, v.steps, v.tokens,
                     v.ms / 1e3, v.ms / double(v.steps));
  }
  return s;
}

std::string expert_load_summary(std::span<const int64_t> counts, int64_t layers, int64_t experts,
                                int64_t top_k) {
  if (layers <= 0 || experts <= 0 || int64_t(counts.size()) != layers * experts) return "";
  std::string ratios;
  double sum_ratio = 0, worst = 0;
  int64_t worst_layer = 0, worst_expert = 0, idle = 0, routed = 0;
  for (int64_t l = 0; l < layers; ++l) {
    int64_t total = 0, mx = 0, arg = 0;
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t c = counts[size_t(l * experts + e)];
      total += c;
      idle += c == 0;
      if (c > mx) {
        mx = c;
        arg = e;
      }
    }
    if (l == 0) routed = total;
    const double ratio = total > 0 ? double(mx) * double(experts) / double(total) : 0.0;
    sum_ratio += ratio;
    if (ratio > worst) {
      worst = ratio;
      worst_layer = l;
      worst_expert = arg;
    }
    ratios += fmt::format("{}{:.2f}", l ? " " : "", ratio);
  }
  if (routed == 0) return "expert load: no tokens routed\n";
  return fmt::format(
      "expert load ({} MoE layers, {} experts, {} a token): {} tokens routed a layer; max/mean "
      "per layer: {}; mean {:.2f}, worst {:.2f} (layer {}, expert {}); {} of {} (layer, expert) "
      "pairs idle\n",
      layers, experts, top_k, routed / std::max<int64_t>(top_k, 1), ratios,
      sum_ratio / double(layers), worst, worst_layer, worst_expert, idle, layers * experts);
}

}  // namespace inferd
