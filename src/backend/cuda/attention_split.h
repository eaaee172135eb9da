// The arithmetic of split-KV (flash-decoding) attention that attention.cu's kernels share with a
// CPU test (tests/backend/attention_split_test.cc): which keys of a row one split reads, and the
// sink term of the combine. Plain C++ that nvcc compiles for the device too.
//  - A row at position `pos` of a sequence with `kv_len` keys attends to keys (pos - window, pos]
//    (window 0: [0, pos]; transformers' sliding_window: key > pos - window), none when kv_len is 0
//    (a graph padding row). Split s of n reads [k0, k1) of that range, chunks of ceil(len / n):
//    the splits cover it exactly once.
//  - Scores are kept in the log2 domain (scale * log2 e * q.k), each split's partial result as
//    (max m_s, sum l_s of 2^(score - m_s), unnormalised accumulator). The combine takes the
//    max mx over the splits and L = sum_s 2^(m_s - mx) l_s; a sink (gpt-oss: one learned logit a
//    query head, natural-log units, no value row) adds 2^(sink log2 e - mx) to L exactly once, in
//    the combine (or in the kernel when there is one split).
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define INFERD_HOST_DEVICE __host__ __device__
#else
#define INFERD_HOST_DEVICE
#endif

namespace inferd::cuda {

constexpr float kAttnLog2E = 1.4426950408889634f;

struct SplitKeys {
  int32_t k0, k1;  // [k0, k1); empty when k1 <= k0
};

// The keys of split `split` of the union of the ranges of rows at positions pos_min..pos_max of
// one sequence (a block that computes several rows of a sequence together: speculative
// verification, short chunks); each row masks the keys outside its own range.
INFERD_HOST_DEVICE inline SplitKeys split_keys_span(int32_t pos_min, int32_t pos_max,
                                                    int32_t kv_len, int32_t window, int32_t split,
                                                    int32_t num_splits) {
  const int32_t first = window > 0 ? (pos_min - window + 1 > 0 ? pos_min - window + 1 : 0) : 0;
  int32_t end = kv_len > 0 ? pos_max + 1 : 0;
  if (end < first) end = first;
  const int32_t chunk = (end - first + num_splits - 1) / num_splits;
  SplitKeys r;
  r.k0 = first + split * chunk;
  r.k1 = end < r.k0 + chunk ? end : r.k0 + chunk;
  return r;
}

INFERD_HOST_DEVICE inline SplitKeys split_keys(int32_t pos, int32_t kv_len, int32_t window,
                                               int32_t split, int32_t num_splits) {
  return split_keys_span(pos, pos, kv_len, window, split, num_splits);
}

// Whether a row at position `pos` sees key `key` (causal, sliding window).
INFERD_HOST_DEVICE inline bool row_sees_key(int32_t pos, int32_t window, int32_t key) {
  return key <= pos && (window <= 0 || key > pos - window);
}

// L with the sink of a query head joined (`sink` in natural-log units; mx, L in the log2 domain);
// rows without keys (mx = -inf) stay empty.
INFERD_HOST_DEVICE inline float add_sink_log2(const float* sinks, int32_t qh, float mx, float L) {
  if (sinks == nullptr || mx == -INFINITY) return L;
  return L + exp2f(sinks[qh] * kAttnLog2E - mx);
}

}  // namespace inferd::cuda
