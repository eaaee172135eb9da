// Wall time of the runner's steps by kind (decode, mixed/prefill) and size bucket (powers of 4 of
// the token count): where a benchmark's time went, printed as one line a bucket. Verification
// steps of speculative decoding (every token of the step sampled, some sequence with several)
// are a kind of their own, by exact token count (one sequence with k drafts: 1 + k tokens).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>

namespace inferd {

class StepProfile {
 public:
  void add(bool decode, int32_t num_tokens, double ms);
  void add_verify(int32_t num_tokens, double ms);
  void clear() { buckets_.clear(); }
  // "decode steps of <= 4 tokens: 120 steps, 480 tokens, 0.6 s, 4.90 ms a step\n" ...
  std::string to_string() const;

 private:
  struct Bucket {
    int64_t steps = 0, tokens = 0;
    double ms = 0;
  };
  std::map<std::pair<int, int32_t>, Bucket> buckets_;  // (decode 0 / mixed 1 / verify 2, bound)
};

// The expert load of an MoE model's sparse layers: counts [layers * experts] (the tokens routed to
// each expert since the profile began) as one line: tokens routed, each layer's max / mean load
// (1.0: perfectly balanced; it bounds how much longer the hottest expert's GEMM runs), their
// mean, the worst layer with its hottest expert, and how many (layer, expert) pairs got nothing.
std::string expert_load_summary(std::span<const int64_t> counts, int64_t layers, int64_t experts,
                                int64_t top_k);

}  // namespace inferd
