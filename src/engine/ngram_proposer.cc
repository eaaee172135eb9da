// The n-gram proposer (ngram_proposer.h).
#include "engine/ngram_proposer.h"

#include <algorithm>

namespace inferd {

void propose_ngram(std::span<const int32_t> tokens, int32_t min_n, int32_t max_n, int32_t k,
                   std::vector<int32_t>& out) {
  out.clear();
  const int64_t L = int64_t(tokens.size());
  if (k <= 0 || min_n <= 0) return;
  for (int64_t n = std::min<int64_t>(max_n, L - 1); n >= min_n; --n) {
    const int32_t* suffix = tokens.data() + (L - n);
    // The first occurrence that ends before the suffix starts being the suffix itself, with at
    // least one token after it.
    for (int64_t i = 0; i + n < L; ++i) {
      if (tokens[size_t(i)] != suffix[0] || !std::equal(suffix, suffix + n, tokens.data() + i))
        continue;
      const int64_t from = i + n, to = std::min<int64_t>(from + k, L);
      out.assign(tokens.begin() + from, tokens.begin() + to);
      return;
    }
  }
}

}  // namespace inferd
