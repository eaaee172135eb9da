// The CPU element-wise activation kernels (Kernels::silu_mul) on every instruction set this
// machine has: against a float64 evaluation, within a few ulp of the result's magnitude, finite at
// extreme inputs, and the same for any split of the row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/rng.h"

namespace inferd::cpu {
namespace {

constexpr const char* kIsas[] = {"generic", "avx2", "avx512", "avx512vnni"};

class ActIsa : public ::testing::TestWithParam<const char*> {};

TEST_P(ActIsa, SiluMulMatchesFloat64) {
  const Kernels* kk = kernels_for(GetParam());
  if (kk == nullptr) GTEST_SKIP() << "this CPU lacks " << GetParam();
  Rng rng(3);
  const int64_t n = 4099;  // not a multiple of any vector width
  std::vector<float> g(static_cast<size_t>(n)), u(static_cast<size_t>(n)),
      out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    g[size_t(i)] = float(rng.normal()) * (i % 7 == 0 ? 30.f : 4.f);
    u[size_t(i)] = float(rng.normal());
  }
  const float extremes[] = {0.f,   -0.f,   1e-30f, -1e-30f, 87.f,    -87.f,    88.5f, -88.5f,
                            100.f, -100.f, 1e30f,  -1e30f,  0.3465f, -0.3466f, 20.f,  -20.f};
  for (size_t i = 0; i < std::size(extremes); ++i) g[i] = extremes[i];
  kk->silu_mul(g.data(), u.data(), out.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double x = g[size_t(i)], ref = x / (1.0 + std::exp(-x)) * double(u[size_t(i)]);
    const float o = out[size_t(i)];
    ASSERT_TRUE(std::isfinite(o)) << "g=" << x;
    // A few float roundings plus exp's error (about 1 ulp); below 1e-30 (g < -87, where exp is
    // clamped) only the absolute error counts.
    const double tol = 8 * std::numeric_limits<float>::epsilon() * std::fabs(ref) + 1e-30;
    ASSERT_NEAR(o, ref, tol) << GetParam() << " g=" << x << " u=" << u[size_t(i)];
  }
  // Any split of the row gives the same bits.
  std::vector<float> parts(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; b += 37)
    kk->silu_mul(g.data() + b, u.data() + b, parts.data() + b, std::min<int64_t>(37, n - b));
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(parts[size_t(i)], out[size_t(i)]) << "i=" << i;
}

INSTANTIATE_TEST_SUITE_P(Isa, ActIsa, ::testing::ValuesIn(kIsas));

}  // namespace
}  // namespace inferd::cpu
