// Split-KV decode attention's arithmetic (backend/cuda/attention_split.h, shared with
// attention.cu's kernels), on the host: every split's key range together cover exactly the keys
// transformers' masks let a row see (causal, sliding_window: key > pos - window), and an emulation
// of the kernels' log2-domain partials and combine with a gpt-oss sink equals the float64 softmax
// with the sink as one more logit (the sink counted once, not once a split).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cuda/attention_split.h"
#include "core/rng.h"

namespace inferd {
namespace {

using cuda::split_keys;

TEST(AttentionSplit, SplitsCoverTheWindowExactlyOnce) {
  for (int32_t window : {0, 1, 2, 7, 16, 128, 500}) {
    for (int32_t pos = 0; pos < 300; ++pos) {
      for (int32_t n : {1, 2, 3, 5, 8, 17, 32, 64}) {
        std::vector<int> seen(size_t(pos) + 1, 0);
        for (int32_t s = 0; s < n; ++s) {
          const cuda::SplitKeys k = split_keys(pos, pos + 1, window, s, n);
          for (int32_t key = k.k0; key < k.k1; ++key) {
            ASSERT_TRUE(key >= 0 && key <= pos) << "pos " << pos << " key " << key;
            ++seen[size_t(key)];
          }
        }
        for (int32_t key = 0; key <= pos; ++key) {
          const bool visible = window == 0 || key > pos - window;  // transformers' mask
          ASSERT_EQ(seen[size_t(key)], visible ? 1 : 0)
              << "window " << window << " pos " << pos << " splits " << n << " key " << key;
        }
      }
    }
  }
}

// A block computing rows at positions pos_min..pos_max of one sequence (seq_blocks): the splits
// of the union range, each row masked by row_sees_key, give every row exactly its visible keys.
TEST(AttentionSplit, SpanSplitsGiveEveryRowItsKeysOnce) {
  for (int32_t window : {0, 1, 3, 7, 16, 128}) {
    for (int32_t pos_min = 0; pos_min < 200; pos_min += 7) {
      for (int32_t rows = 1; rows <= 8; ++rows) {
        const int32_t pos_max = pos_min + rows - 1;
        for (int32_t n : {1, 2, 5, 32}) {
          for (int32_t pos = pos_min; pos <= pos_max; ++pos) {
            std::vector<int> seen(size_t(pos_max) + 1, 0);
            for (int32_t s = 0; s < n; ++s) {
              const cuda::SplitKeys k =
                  cuda::split_keys_span(pos_min, pos_max, pos_max + 1, window, s, n);
              for (int32_t key = k.k0; key < k.k1; ++key) {
                ASSERT_TRUE(key >= 0 && key <= pos_max) << "key " << key;
                if (cuda::row_sees_key(pos, window, key)) ++seen[size_t(key)];
              }
            }
            for (int32_t key = 0; key <= pos_max; ++key) {
              const bool visible = key <= pos && (window == 0 || key > pos - window);
              ASSERT_EQ(seen[size_t(key)], visible ? 1 : 0)
                  << "window " << window << " rows " << pos_min << ".." << pos_max << " row " << pos
                  << " splits " << n << " key " << key;
            }
          }
        }
      }
    }
  }
}

TEST(AttentionSplit, PaddingRowsReadNothing) {
  for (int32_t s = 0; s < 4; ++s) {
    const cuda::SplitKeys k = split_keys(0, 0, 128, s, 4);
    EXPECT_GE(k.k0, k.k1);
  }
}

// One query head: scores (already scaled), values of dim 4, a sink; the kernels' structure.
std::vector<float> emulate(const std::vector<float>& score, const std::vector<float>& v,
                           int32_t pos, int32_t window, int32_t n, const float* sink) {
  constexpr int kD = 4;
  const size_t ns = static_cast<size_t>(n);
  std::vector<float> pm(ns), pl(ns), pa(ns * kD, 0.f);
  for (int32_t s = 0; s < n; ++s) {  // one split: its own online softmax in the log2 domain
    const cuda::SplitKeys k = split_keys(pos, pos + 1, window, s, n);
    float m = -INFINITY, l = 0.f;
    for (int32_t key = k.k0; key < k.k1; ++key) {
      const float x = score[size_t(key)] * cuda::kAttnLog2E;
      if (x > m) {
        const float c = std::exp2(m - x);
        l *= c;
        for (int d = 0; d < kD; ++d) pa[size_t(s) * kD + d] *= c;
        m = x;
      }
      const float e = std::exp2(x - m);
      l += e;
      for (int d = 0; d < kD; ++d) pa[size_t(s) * kD + d] += e * v[size_t(key) * kD + d];
    }
    pm[size_t(s)] = m;
    pl[size_t(s)] = l;
  }
  // The combine: the splits rescaled to their common max, the sink added once.
  float mx = -INFINITY;
  for (float m : pm) mx = std::fmax(mx, m);
  std::vector<float> out(kD, 0.f);
  float L = 0.f;
  for (int32_t s = 0; s < n; ++s) {
    const float w = std::exp2(pm[size_t(s)] - mx);
    L += w * pl[size_t(s)];
    for (int d = 0; d < kD; ++d) out[size_t(d)] += w * pa[size_t(s) * kD + d];
  }
  L = cuda::add_sink_log2(sink, 0, mx, L);
  for (float& o : out) o /= L;
  return out;
}

TEST(AttentionSplit, EmulatedCombineWithASinkMatchesTheSoftmax) {
  Rng rng(7);
  constexpr int kD = 4;
  for (int32_t window : {0, 5, 128}) {
    for (int32_t pos : {0, 4, 5, 127, 128, 129, 400}) {
      std::vector<float> score(size_t(pos) + 1), v((size_t(pos) + 1) * kD);
      for (float& x : score) x = float(rng.uniform() * 8 - 4);
      for (float& x : v) x = float(rng.uniform() * 2 - 1);
      for (float sink : {-30.f, 0.3f, 2.f, 30.f}) {
        // float64 reference: softmax over the visible keys and the sink.
        double den = std::exp(double(sink));
        std::vector<double> num(kD, 0.0);
        for (int32_t key = 0; key <= pos; ++key) {
          if (window > 0 && key <= pos - window) continue;
          const double e = std::exp(double(score[size_t(key)]));
          den += e;
          for (int d = 0; d < kD; ++d) num[size_t(d)] += e * v[size_t(key) * kD + d];
        }
        for (int32_t n : {1, 3, 32}) {
          const std::vector<float> got = emulate(score, v, pos, window, n, &sink);
          for (int d = 0; d < kD; ++d)
            EXPECT_NEAR(got[size_t(d)], num[size_t(d)] / den, 2e-5)
                << "window " << window << " pos " << pos << " sink " << sink << " splits " << n;
        }
      }
    }
  }
}

}  // namespace
}  // namespace inferd
