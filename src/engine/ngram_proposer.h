// The n-gram proposer of speculative decoding (vLLM's "ngram" method, prompt lookup decoding):
// the last n tokens of a sequence (prompt + output so far), n from prompt_lookup_max down to
// prompt_lookup_min, are looked up earlier in the same tokens; the tokens that followed the
// first earlier occurrence are the draft. On the host, per sequence, O(length x n) a lookup.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace inferd {

// Up to `k` draft tokens for the continuation of `tokens` into `out` (cleared first; empty when
// no n-gram of min_n..max_n tokens recurs).
void propose_ngram(std::span<const int32_t> tokens, int32_t min_n, int32_t max_n, int32_t k,
                   std::vector<int32_t>& out);

}  // namespace inferd
