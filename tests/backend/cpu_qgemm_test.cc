// The CPU quantized GEMM (Kernels::act_type / quantize_act / qgemm) for every GGUF block type with
// a quantized path, on every instruction set this machine has: against a float64 sum of the
// dequantized weights times the dequantized activations, results independent of the batch and of
// the row split, and the same quantized activations on every path. Weight blocks are random bytes
// (every bit pattern) with sane fp16 scales.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/amx_qgemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/qlinear.h"
#include "core/dtype.h"
#include "core/ggml_types.h"
#include "core/rng.h"

namespace inferd::cpu {
namespace {

using ggml::Type;

constexpr Type kTypes[] = {Type::kQ4_0, Type::kQ4_1,   Type::kQ5_0, Type::kQ5_1,
                           Type::kQ8_0, Type::kIQ4_NL, Type::kQ2_K, Type::kQ3_K,
                           Type::kQ4_K, Type::kQ5_K,   Type::kQ6_K};
constexpr const char* kIsas[] = {"generic", "avx2", "avx512", "avx512vnni"};

// Byte offsets of a block's fp16 fields (d, and dmin / m where the type has one).
std::vector<size_t> half_fields(Type t) {
  switch (t) {
    case Type::kQ4_1:
    case Type::kQ5_1:
    case Type::kQ4_K:
    case Type::kQ5_K:
      return {0, 2};
    case Type::kQ2_K:
      return {80, 82};
    case Type::kQ3_K:
      return {108};
    case Type::kQ6_K:
      return {208};
    default:
      return {0};
  }
}

// N rows of K elements of random blocks of type t.
std::vector<uint8_t> random_weights(Type t, int64_t N, int64_t K, Rng& rng) {
  const ggml::TypeTraits& tr = ggml::traits(t);
  std::vector<uint8_t> w(size_t(N * ggml::row_bytes(t, K)));
  for (auto& b : w) b = uint8_t(rng.next_u64());
  for (size_t off = 0; off < w.size(); off += size_t(tr.block_bytes))
    for (size_t f : half_fields(t)) {
      const uint16_t h = f32_to_f16(float((rng.uniform() * 2 - 1) * 0.02));
      std::memcpy(&w[off + f], &h, 2);
    }
  return w;
}

std::vector<float> random_x(int64_t T, int64_t K, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(T * K));
  for (auto& v : x) v = float(rng.normal());
  if (T > 2)  // an all-zero row and a row of one large value
    for (int64_t k = 0; k < K; ++k) {
      x[size_t(K + k)] = 0.f;
      x[size_t(2 * K + k)] = k == K / 3 ? 1e3f : 0.f;
    }
  return x;
}

// The values quantize_act wrote (row t of K), and for Q8_1 the blocks' s fields.
void dequant_act(Type a, const uint8_t* q, int64_t K, float* y, std::vector<float>* s) {
  if (a != Type::kQ8_1) {
    ggml::dequantize_row(a, q, y, K);
    return;
  }
  for (int64_t b = 0; b < K / 32; ++b) {
    ggml::BlockQ8_1 blk;
    std::memcpy(&blk, q + b * int64_t(sizeof blk), sizeof blk);
    for (int l = 0; l < 32; ++l) y[b * 32 + l] = f16_to_f32(blk.d) * float(blk.qs[l]);
    s->push_back(f16_to_f32(blk.s));
  }
}

struct Ref {
  std::vector<double> value, scale;  // [T, N]: reference and sum of |terms|
};

// sum_k W[n,k] * X[t,k] from the dequantized weights and activations; for Q4_1 / Q5_1 (weights
// d * q + m against Q8_1) the min term uses the activation block's s, as ggml's dot product does.
Ref reference(Type t, const std::vector<uint8_t>& w, const std::vector<uint8_t>& xq, int64_t T,
              int64_t K, int64_t N, const float* bias) {
  const Type a = kernels_for("generic")->act_type(t);
  const int64_t xrb = ggml::row_bytes(a, K), wrb = ggml::row_bytes(t, K);
  std::vector<float> wd(static_cast<size_t>(N * K)), xd(static_cast<size_t>(T * K));
  std::vector<std::vector<float>> s(static_cast<size_t>(T));
  for (int64_t n = 0; n < N; ++n)
    ggml::dequantize_row(t, &w[size_t(n * wrb)], &wd[size_t(n * K)], K);
  for (int64_t i = 0; i < T; ++i)
    dequant_act(a, &xq[size_t(i * xrb)], K, &xd[size_t(i * K)], &s[size_t(i)]);
  Ref r{std::vector<double>(size_t(T * N)), std::vector<double>(size_t(T * N))};
  const bool min_s = a == Type::kQ8_1;
  for (int64_t i = 0; i < T; ++i)
    for (int64_t n = 0; n < N; ++n) {
      double v = bias ? bias[n] : 0.0, sc = bias ? std::fabs(bias[n]) : 0.0;
      for (int64_t b = 0; b < K / 32 && min_s; ++b) {
        // m * (s - sum of the block's dequantized x): replaces the m * x terms by m * s.
        const double m = f16_to_f32(*reinterpret_cast<const uint16_t*>(
            &w[size_t(n * wrb + b * ggml::traits(t).block_bytes + 2)]));
        double sx = 0;
        for (int l = 0; l < 32; ++l) sx += xd[size_t(i * K + b * 32 + l)];
        v += m * (s[size_t(i)][size_t(b)] - sx);
        sc += std::fabs(m * s[size_t(i)][size_t(b)]);
      }
      for (int64_t k = 0; k < K; ++k) {
        const double p = double(wd[size_t(n * K + k)]) * xd[size_t(i * K + k)];
        v += p;
        sc += std::fabs(p);
      }
      r.value[size_t(i * N + n)] = v;
      r.scale[size_t(i * N + n)] = sc;
    }
  return r;
}

std::vector<int64_t> k_values(Type t) {
  if (ggml::traits(t).block_elems == 256) return {256, 512, 1280};
  return {32, 224, 256, 800};
}

class QgemmIsa : public ::testing::TestWithParam<const char*> {};

TEST_P(QgemmIsa, MatchesFloat64ReferenceForEveryType) {
  const Kernels* kk = kernels_for(GetParam());
  if (kk == nullptr) GTEST_SKIP() << "this CPU lacks " << GetParam();
  Rng rng(uint64_t(std::hash<std::string>()(GetParam())));
  for (Type t : kTypes) {
    const Type a = kk->act_type(t);
    ASSERT_NE(a, Type::kF32) << ggml::traits(t).name;
    for (int64_t K : k_values(t))
      for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 37}) {
        const int64_t N = 1 + int64_t(rng.next_u64() % 19);
        const auto w = random_weights(t, N, K, rng);
        const auto x = random_x(T, K, rng);
        std::vector<float> bias(static_cast<size_t>(N));
        for (auto& b : bias) b = float(rng.normal());
        const bool with_bias = (T + K) % 2 == 0;
        std::vector<uint8_t> xq(size_t(T * ggml::row_bytes(a, K)));
        kk->quantize_act(t, x.data(), T, K, xq.data());
        const Ref r = reference(t, w, xq, T, K, N, with_bias ? bias.data() : nullptr);
        // Three ranges of rows, as three threads would take them; one row left unwritten.
        const int64_t ldo = N + 2, a1 = N / 3, a2 = (2 * N) / 3 + 1 > N ? N : (2 * N) / 3 + 1;
        std::vector<float> out(size_t(T * ldo), std::numeric_limits<float>::quiet_NaN());
        const float* bp = with_bias ? bias.data() : nullptr;
        kk->qgemm(xq.data(), T, K, w.data(), t, bp, a1, a2, out.data(), ldo);
        kk->qgemm(xq.data(), T, K, w.data(), t, bp, 0, a1, out.data(), ldo);
        kk->qgemm(xq.data(), T, K, w.data(), t, bp, a2, N, out.data(), ldo);
        for (int64_t i = 0; i < T; ++i) {
          for (int64_t n = 0; n < N; ++n) {
            const double ref = r.value[size_t(i * N + n)], tol = 1e-5 * r.scale[size_t(i * N + n)];
            ASSERT_NEAR(out[size_t(i * ldo + n)], ref, tol + 1e-30)
                << ggml::traits(t).name << " K=" << K << " T=" << T << " t=" << i << " n=" << n;
          }
          ASSERT_TRUE(std::isnan(out[size_t(i * ldo + N)])) << "wrote past the rows";
        }
      }
  }
}

TEST_P(QgemmIsa, RowsDoNotDependOnBatchOrSplit) {
  const Kernels* kk = kernels_for(GetParam());
  if (kk == nullptr) GTEST_SKIP() << "this CPU lacks " << GetParam();
  Rng rng(7);
  for (Type t : kTypes) {
    const int64_t K = ggml::traits(t).block_elems == 256 ? 768 : 352, N = 23, T = 37;
    const Type a = kk->act_type(t);
    const int64_t xrb = ggml::row_bytes(a, K);
    const auto w = random_weights(t, N, K, rng);
    const auto x = random_x(T, K, rng);
    std::vector<float> bias(static_cast<size_t>(N));
    for (auto& b : bias) b = float(rng.normal());
    std::vector<uint8_t> xq(static_cast<size_t>(T * xrb));
    kk->quantize_act(t, x.data(), T, K, xq.data());
    std::vector<float> all(static_cast<size_t>(T * N)), one(static_cast<size_t>(N));
    kk->qgemm(xq.data(), T, K, w.data(), t, bias.data(), 0, N, all.data(), N);
    for (int64_t i = 0; i < T; ++i) {
      // Row i alone, quantized alone and computed in odd pieces.
      std::vector<uint8_t> q1(static_cast<size_t>(xrb));
      kk->quantize_act(t, x.data() + i * K, 1, K, q1.data());
      ASSERT_EQ(0, std::memcmp(q1.data(), &xq[size_t(i * xrb)], size_t(xrb)));
      for (int64_t n0 = 0; n0 < N; n0 += 5)
        kk->qgemm(q1.data(), 1, K, w.data(), t, bias.data(), n0, std::min(N, n0 + 5), one.data(),
                  N);
      ASSERT_EQ(0, std::memcmp(one.data(), &all[size_t(i * N)], size_t(N) * 4))
          << ggml::traits(t).name << " row " << i;
    }
    // Rows 3..8 as a batch of their own.
    std::vector<float> part(static_cast<size_t>(6 * N));
    kk->qgemm(&xq[size_t(3 * xrb)], 6, K, w.data(), t, bias.data(), 0, N, part.data(), N);
    ASSERT_EQ(0, std::memcmp(part.data(), &all[size_t(3 * N)], part.size() * 4));
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, QgemmIsa, ::testing::ValuesIn(kIsas));

TEST(Qgemm, EveryPathQuantizesAlikeAndAgreesWithGeneric) {
  const Kernels* g = kernels_for("generic");
  Rng rng(11);
  for (Type t : kTypes) {
    const int64_t K = 1536, N = 9, T = 5;
    const auto w = random_weights(t, N, K, rng);
    const auto x = random_x(T, K, rng);
    const Type a = g->act_type(t);
    std::vector<uint8_t> xg(size_t(T * ggml::row_bytes(a, K)));
    g->quantize_act(t, x.data(), T, K, xg.data());
    const Ref r = reference(t, w, xg, T, K, N, nullptr);
    std::vector<float> og(static_cast<size_t>(T * N));
    g->qgemm(xg.data(), T, K, w.data(), t, nullptr, 0, N, og.data(), N);
    for (const char* isa : kIsas) {
      const Kernels* kk = kernels_for(isa);
      if (kk == nullptr) continue;
      std::vector<uint8_t> xi(xg.size());
      kk->quantize_act(t, x.data(), T, K, xi.data());
      ASSERT_EQ(xi, xg) << isa << " " << ggml::traits(t).name;
      std::vector<float> oi(og.size());
      kk->qgemm(xi.data(), T, K, w.data(), t, nullptr, 0, N, oi.data(), N);
      for (size_t e = 0; e < og.size(); ++e)
        ASSERT_NEAR(oi[e], og[e], 2e-5 * r.scale[e]) << isa << " " << ggml::traits(t).name;
    }
  }
}

TEST(Qgemm, TypesWithoutAQuantizedPathSayF32) {
  for (const char* isa : kIsas) {
    const Kernels* kk = kernels_for(isa);
    if (kk == nullptr) continue;
    for (Type t : {Type::kF32, Type::kF16, Type::kBF16, Type::kQ8_K, Type::kIQ2_XXS})
      EXPECT_EQ(kk->act_type(t), Type::kF32) << isa;
  }
}

TEST(Qgemm, QlinearEqualsQgemmOnAnyThreadCount) {
  const Kernels& k = kernels();
  Rng rng(5);
  const int64_t K = 512, N = 37;
  for (Type t : {Type::kQ4_K, Type::kQ8_0}) {
    const auto w = random_weights(t, N, K, rng);
    for (int64_t T : {1, 9}) {
      const auto x = random_x(T, K, rng);
      std::vector<uint8_t> xq(size_t(T * ggml::row_bytes(k.act_type(t), K)));
      k.quantize_act(t, x.data(), T, K, xq.data());
      std::vector<float> want(static_cast<size_t>(T * N));
      k.qgemm(xq.data(), T, K, w.data(), t, nullptr, 0, N, want.data(), N);
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        std::vector<uint8_t> scratch;
        std::vector<float> got(static_cast<size_t>(T * N));
        qlinear(pool, k, x.data(), T, K, w.data(), t, nullptr, N, got.data(), N, scratch);
        EXPECT_EQ(got, want) << threads << " threads";
        EXPECT_EQ(int64_t(scratch.size()), qlinear_scratch_bytes(k, t, T, K));
      }
    }
  }
}

TEST(Qgemm, QuantizedActivationsAreCloseToTheInput) {
  const Kernels& k = kernels();
  Rng rng(3);
  const int64_t K = 512, T = 4;
  const auto x = random_x(T, K, rng);
  for (Type t : {Type::kQ4_0, Type::kQ4_1, Type::kQ4_K}) {
    const Type a = k.act_type(t);
    const int64_t xrb = ggml::row_bytes(a, K), blk = ggml::traits(a).block_elems;
    std::vector<uint8_t> xq(static_cast<size_t>(T * xrb));
    k.quantize_act(t, x.data(), T, K, xq.data());
    for (int64_t i = 0; i < T; ++i) {
      std::vector<float> y(static_cast<size_t>(K));
      std::vector<float> s;
      dequant_act(a, &xq[size_t(i * xrb)], K, y.data(), &s);
      for (int64_t b = 0; b < K / blk; ++b) {
        float amax = 0;
        for (int64_t l = 0; l < blk; ++l)
          amax = std::max(amax, std::fabs(x[size_t(i * K + b * blk + l)]));
        for (int64_t l = 0; l < blk; ++l) {
          const size_t e = size_t(b * blk + l);
          ASSERT_LE(std::fabs(y[e] - x[size_t(i * K) + e]), 0.6f * amax / 127.f) << i << " " << e;
        }
      }
    }
  }
}

// The AMX prefill path (amx_qgemm.h) against float64 and bit-identical to the one-row (decode)
// path, for odd batch sizes, odd row counts and row splits; run directly and through qgemm /
// qlinear.
TEST(QgemmAmx, MatchesFloat64AndTheOneRowPathBitForBit) {
  if (!amx_available()) GTEST_SKIP() << "no AMX int8 here: " << amx_unavailable_reason();
  const Kernels* kk = kernels_for("avx512vnni");
  ASSERT_NE(kk, nullptr) << "AMX without AVX-512 VNNI";
  Rng rng(17);
  int checked = 0;
  for (Type t : {Type::kQ4_K, Type::kQ5_K, Type::kQ6_K}) {
    ASSERT_TRUE(amx_handles(t));
    for (int64_t K : {256, 768, 1280})
      for (int64_t T : {1, 5, 16, 17, 32, 33, 37, 64, 70}) {
        const int64_t N = 1 + int64_t(rng.next_u64() % 77);
        const auto w = random_weights(t, N, K, rng);
        const auto x = random_x(T, K, rng);
        std::vector<float> bias(static_cast<size_t>(N));
        for (auto& b : bias) b = float(rng.normal());
        const float* bp = (T + K) % 2 == 0 ? bias.data() : nullptr;
        const int64_t xrb = ggml::row_bytes(Type::kQ8_K, K);
        std::vector<uint8_t> xq(size_t(T * xrb));
        kk->quantize_act(t, x.data(), T, K, xq.data());
        const Ref r = reference(t, w, xq, T, K, N, bp);
        // Three ranges of rows, as three threads would take them; one column left unwritten.
        const int64_t ldo = N + 1, a1 = N / 3, a2 = std::min(N, (2 * N) / 3 + 1);
        std::vector<float> out(size_t(T * ldo), std::numeric_limits<float>::quiet_NaN());
        for (auto [n0, n1] : {std::pair{a1, a2}, std::pair{int64_t(0), a1}, std::pair{a2, N}})
          ASSERT_TRUE(amx_qgemm(xq.data(), T, K, w.data(), t, bp, n0, n1, out.data(), ldo));
        std::vector<float> one(static_cast<size_t>(N));
        for (int64_t i = 0; i < T; ++i) {
          kk->qgemm(&xq[size_t(i * xrb)], 1, K, w.data(), t, bp, 0, N, one.data(), N);
          for (int64_t n = 0; n < N; ++n) {
            const size_t e = size_t(i * N + n);
            ASSERT_NEAR(out[size_t(i * ldo + n)], r.value[e], 1e-5 * r.scale[e] + 1e-30)
                << ggml::traits(t).name << " K=" << K << " T=" << T << " t=" << i << " n=" << n;
            ASSERT_EQ(std::bit_cast<uint32_t>(out[size_t(i * ldo + n)]),
                      std::bit_cast<uint32_t>(one[size_t(n)]))
                << ggml::traits(t).name << " K=" << K << " T=" << T << " t=" << i << " n=" << n;
          }
          ASSERT_TRUE(std::isnan(out[size_t(i * ldo + N)])) << "wrote past the rows";
        }
        ++checked;
      }
  }
  std::printf("AMX int8 path checked on %d shapes\n", checked);
}

TEST(QgemmAmx, KernelsAndQlinearTakeItForLargeBatchesOnAnyThreadCount) {
  if (!amx_enabled()) GTEST_SKIP() << "AMX off here: " << amx_unavailable_reason();
  const Kernels* kk = kernels_for("avx512vnni");
  ASSERT_NE(kk, nullptr);
  Rng rng(23);
  const int64_t K = 512, N = 101, T = kAmxMinRows + 9;
  for (Type t : {Type::kQ4_K, Type::kQ5_K, Type::kQ6_K}) {
    const auto w = random_weights(t, N, K, rng);
    const auto x = random_x(T, K, rng);
    const int64_t xrb = ggml::row_bytes(Type::kQ8_K, K);
    std::vector<uint8_t> xq(size_t(T * xrb));
    kk->quantize_act(t, x.data(), T, K, xq.data());
    std::vector<float> amx(static_cast<size_t>(T * N)), want(amx.size());
    ASSERT_TRUE(amx_qgemm(xq.data(), T, K, w.data(), t, nullptr, 0, N, amx.data(), N));
    for (int64_t i = 0; i < T; ++i)
      kk->qgemm(&xq[size_t(i * xrb)], 1, K, w.data(), t, nullptr, 0, N, &want[size_t(i * N)], N);
    ASSERT_EQ(amx, want) << ggml::traits(t).name;
    std::vector<float> got(amx.size());
    kk->qgemm(xq.data(), T, K, w.data(), t, nullptr, 0, N, got.data(), N);
    EXPECT_EQ(got, want) << ggml::traits(t).name << " through Kernels::qgemm";
    if (&kernels() != kk) continue;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<uint8_t> scratch;
      std::fill(got.begin(), got.end(), 0.f);
      qlinear(pool, *kk, x.data(), T, K, w.data(), t, nullptr, N, got.data(), N, scratch);
      EXPECT_EQ(got, want) << ggml::traits(t).name << " " << threads << " threads";
    }
  }
}

TEST(QgemmAmx, DeclinesTypesItDoesNotHandle) {
  for (Type t : {Type::kQ4_0, Type::kQ8_0, Type::kQ2_K, Type::kQ3_K, Type::kIQ4_NL})
    EXPECT_FALSE(amx_handles(t)) << ggml::traits(t).name;
  float out = 0.f;
  const uint8_t dummy[1] = {};
  EXPECT_FALSE(amx_qgemm(dummy, 1, 32, dummy, Type::kQ8_0, nullptr, 0, 1, &out, 1));
}

}  // namespace
}  // namespace inferd::cpu
