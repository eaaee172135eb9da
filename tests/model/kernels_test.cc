// CPU kernels against float64 references on fresh random inputs, for every instruction set this
// machine has; outputs are poisoned first so unwritten elements are caught.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/rng.h"

namespace inferd::cpu {
namespace {

std::vector<uint16_t> to_dtype(const std::vector<float>& v, DType t) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    o[i] = t == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
  return o;
}

float from_dtype(uint16_t h, DType t) {
  return t == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

class KernelIsa : public ::testing::TestWithParam<const char*> {
 protected:
  const Kernels* k() {
    const Kernels* kk = kernels_for(GetParam());
    return kk;
  }
};

TEST_P(KernelIsa, GemmMatchesFloat64ForEveryWeightType) {
  const Kernels* kk = k();
  if (kk == nullptr) GTEST_SKIP() << "this CPU lacks " << GetParam();
  Rng rng(uint64_t(std::hash<std::string>()(GetParam())));
  struct Shape {
    int64_t T, K, N;
  };
  for (Shape s : {Shape{1, 64, 5}, Shape{3, 17, 9}, Shape{4, 128, 8}, Shape{7, 100, 33},
                  Shape{37, 96, 13}, Shape{2, 1, 3}}) {
    for (DType wt : {DType::kF32, DType::kBF16, DType::kF16}) {
      std::vector<float> x(size_t(s.T * s.K)), w(size_t(s.N * s.K)), bias(size_t(s.N));
      for (auto& v : x) v = float(rng.normal());
      for (auto& v : w) v = float(rng.normal());
      for (auto& v : bias) v = float(rng.normal());
      std::vector<uint16_t> wh;
      const void* wp = w.data();
      if (wt != DType::kF32) {
        wh = to_dtype(w, wt);
        wp = wh.data();
      }
      const int64_t ldo = s.N + 3;
      std::vector<float> out(size_t(s.T * ldo), std::numeric_limits<float>::quiet_NaN());
      // Two disjoint ranges, as two threads would do.
      const int64_t mid = s.N / 2;
      kk->gemm(x.data(), s.T, s.K, wp, wt, bias.data(), 0, mid, out.data(), ldo);
      kk->gemm(x.data(), s.T, s.K, wp, wt, bias.data(), mid, s.N, out.data(), ldo);
      for (int64_t t = 0; t < s.T; ++t) {
        for (int64_t n = 0; n < s.N; ++n) {
          double ref = bias[size_t(n)], mag = std::fabs(bias[size_t(n)]);
          for (int64_t i = 0; i < s.K; ++i) {
            const float wv = wt == DType::kF32 ? w[size_t(n * s.K + i)]
                                               : from_dtype(wh[size_t(n * s.K + i)], wt);
            ref += double(x[size_t(t * s.K + i)]) * wv;
            mag += std::fabs(double(x[size_t(t * s.K + i)]) * wv);
          }
          const float got = out[size_t(t * ldo + n)];
          ASSERT_TRUE(std::isfinite(got)) << "unwritten output t=" << t << " n=" << n;
          EXPECT_NEAR(got, ref, 1e-5 * mag + 1e-6)
              << GetParam() << " T=" << s.T << " K=" << s.K << " N=" << s.N << " t=" << t;
        }
        // Padding columns between rows stay untouched.
        for (int64_t n = s.N; n < ldo; ++n) EXPECT_TRUE(std::isnan(out[size_t(t * ldo + n)]));
      }
    }
  }
}

TEST_P(KernelIsa, GemmRowResultsDoNotDependOnBatchSize) {
  const Kernels* kk = k();
  if (kk == nullptr) GTEST_SKIP() << "this CPU lacks " << GetParam();
  Rng rng(99);
  // T = 40 crosses the kernels' 32-row batch blocks; N = 37 leaves 8-, 4- and 1-row remainders.
  const int64_t N = 37, T = 40;
  for (int64_t K : {80, 903}) {
    for (DType wt : {DType::kF32, DType::kBF16, DType::kF16}) {
      std::vector<float> x(size_t(T * K)), w(size_t(N * K));
      for (auto& v : x) v = float(rng.normal());
      for (auto& v : w) v = float(rng.normal());
      std::vector<uint16_t> wh;
      const void* wp = w.data();
      if (wt != DType::kF32) {
        wh = to_dtype(w, wt);
        wp = wh.data();
      }
      std::vector<float> all(static_cast<size_t>(T * N)), one(static_cast<size_t>(N));
      kk->gemm(x.data(), T, K, wp, wt, nullptr, 0, N, all.data(), N);
      for (int64_t t = 0; t < T; ++t) {
        // One row at a time, and its output rows split as threads would split them.
        const int64_t cut = (t * 7) % N;
        kk->gemm(x.data() + t * K, 1, K, wp, wt, nullptr, 0, cut, one.data(), N);
        kk->gemm(x.data() + t * K, 1, K, wp, wt, nullptr, cut, N, one.data(), N);
        for (int64_t n = 0; n < N; ++n)
          ASSERT_EQ(one[size_t(n)], all[size_t(t * N + n)])
              << GetParam() << " K=" << K << " t=" << t << " n=" << n << " cut=" << cut;
      }
      // Batches of 2 and 5 (the GEMV path and the tiled path with a remainder), split at 13.
      for (int64_t tb : {2, 5}) {
        std::vector<float> part(static_cast<size_t>(tb * N));
        kk->gemm(x.data() + 3 * K, tb, K, wp, wt, nullptr, 0, 13, part.data(), N);
        kk->gemm(x.data() + 3 * K, tb, K, wp, wt, nullptr, 13, N, part.data(), N);
        for (int64_t i = 0; i < tb * N; ++i)
          ASSERT_EQ(part[size_t(i)], all[size_t(3 * N + i)]) << GetParam() << " tb=" << tb;
      }
    }
  }
}

TEST_P(KernelIsa, DotAxpyConvert) {
  const Kernels* kk = k();
  if (kk == nullptr) GTEST_SKIP() << "this CPU lacks " << GetParam();
  Rng rng(5);
  for (int64_t n : {1, 15, 16, 33, 128}) {
    const auto un = static_cast<size_t>(n);
    std::vector<float> a(un), b(un), y(un);
    double ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      a[size_t(i)] = float(rng.normal());
      b[size_t(i)] = float(rng.normal());
      y[size_t(i)] = float(rng.normal());
      ref += double(a[size_t(i)]) * b[size_t(i)];
    }
    EXPECT_NEAR(kk->dot(a.data(), b.data(), n), ref, 1e-5 * (1 + std::fabs(ref)) * double(n));
    std::vector<float> y0 = y;
    kk->axpy(0.5f, a.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(y[size_t(i)], y0[size_t(i)] + 0.5 * a[size_t(i)], 1e-6);
    for (DType t : {DType::kBF16, DType::kF16}) {
      auto h = to_dtype(a, t);
      std::vector<float> f(size_t(n), std::numeric_limits<float>::quiet_NaN());
      kk->to_f32(h.data(), t, f.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(f[size_t(i)], from_dtype(h[size_t(i)], t));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, KernelIsa,
                         ::testing::Values("generic", "avx2", "avx512", "avx512vnni"));

}  // namespace
}  // namespace inferd::cpu
