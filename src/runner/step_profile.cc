// The runner's step profile (step_profile.h).
#include "runner/step_profile.h"

#include <fmt/format.h>

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

}  // namespace inferd
