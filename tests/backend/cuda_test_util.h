// Shared helpers of the CUDA backend tests: every test skips itself where there is no GPU.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_device.h"
#include "backend/forward_batch.h"
#include "core/rng.h"

#define INFERD_REQUIRE_GPU() \
  if (::inferd::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine"

namespace inferd::test {

// ||a - ref|| / ||ref|| over n values (float64); NaN anywhere in `a` gives +inf.
inline double rel_err(const float* a, const float* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    const double d = double(a[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}
inline double rel_err(const Tensor& a, const Tensor& ref) {
  EXPECT_EQ(a.numel(), ref.numel());
  return rel_err(a.data_as<float>(), ref.data_as<float>(), size_t(a.numel()));
}
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::fabs(double(a.data_as<float>()[i]) - double(b.data_as<float>()[i]));
    if (!(d <= m)) m = d;  // NaN propagates
  }
  return m;
}

// A host f32 tensor of uniform values in [-scale, scale] + offset, rounded to bf16 so that the
// CPU (fp32) and CUDA (bf16) backends see exactly the same inputs.
inline Tensor rand_host(std::initializer_list<int64_t> shape, Rng& rng, float scale = 1.f,
                        float offset = 0.f) {
  Tensor t = Tensor::empty_host(DType::kF32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = float((rng.uniform() * 2 - 1) * scale) + offset;
    t.data_as<float>()[i] = bf16_to_f32(f32_to_bf16(v));
  }
  return t;
}

inline Tensor copy_host(const Tensor& t) {
  Tensor o = Tensor::empty_host(t.dtype(), t.shape());
  std::memcpy(o.data(), t.data(), t.nbytes());
  return o;
}

// One sequence per entry: (cached tokens, new tokens); block tables drawn from a shuffled pool
// of `num_blocks` blocks so no table is contiguous. Token ids in [0, vocab).
struct SeqSpec {
  int32_t cached = 0;
  int32_t q_len = 0;
};
inline ForwardBatch make_batch(const std::vector<SeqSpec>& specs, int32_t block_size,
                               int32_t num_blocks, Rng& rng, int32_t vocab = 100) {
  std::vector<int32_t> pool(static_cast<size_t>(num_blocks));
  for (int32_t i = 0; i < num_blocks; ++i) pool[size_t(i)] = i;
  for (size_t i = pool.size(); i > 1; --i) std::swap(pool[i - 1], pool[rng.next_u64() % i]);
  size_t next = 0;
  ForwardBatch b;
  for (const SeqSpec& s : specs) {
    SeqBatchInfo info;
    info.q_start = b.num_tokens();
    info.q_len = s.q_len;
    info.kv_len = s.cached + s.q_len;
    info.block_table_offset = int32_t(b.block_tables.size());
    info.num_blocks = (info.kv_len + block_size - 1) / block_size;
    for (int32_t k = 0; k < info.num_blocks; ++k) {
      EXPECT_LT(next, pool.size()) << "block pool too small";
      b.block_tables.push_back(pool[next++ % pool.size()]);
    }
    for (int32_t j = 0; j < s.q_len; ++j) {
      b.token_ids.push_back(int32_t(rng.next_u64() % uint64_t(vocab)));
      b.positions.push_back(s.cached + j);
      b.logit_rows.push_back(b.num_tokens() - 1);
    }
    b.seqs.push_back(info);
  }
  return b;
}

}  // namespace inferd::test
