// Host emulation of the CUDA backend's GGUF block decoding (backend/cuda/ggml_blocks.h, compiled
// here by the host compiler): rows repacked into the device layout and decoded unit by unit, the
// way the GEMV and dequantize kernels walk them, give exactly ggml::dequantize_row's values, every
// element once; every wide load is aligned (the host build aborts otherwise). Runs without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cuda/ggml_blocks.h"
#include "backend/cuda/ggml_mma.h"
#include "core/dtype.h"
#include "core/ggml_types.h"
#include "core/rng.h"

namespace inferd {
namespace {

namespace gg = cuda::gg;

struct alignas(16) Chunk {
  uint8_t b[16];
};

template <class Q>
void check_type(int64_t rows, int64_t k, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << ggml::traits(Q::kType).name << " " << rows << "x" << k);
  static_assert(Q::kRunLen % 8 == 0 && Q::kUnits * Q::kRuns * Q::kRunLen == Q::kBlockElems);
  const gg::SlotLayout L = gg::slot_layout(Q::kType);
  ASSERT_EQ(L.slot, Q::kSlot);
  ASSERT_EQ(L.slot % 4, 0);
  const ggml::TypeTraits& tr = ggml::traits(Q::kType);
  ASSERT_EQ(tr.block_elems, Q::kBlockElems);
  ASSERT_LE(tr.block_bytes + Q::kFront, Q::kSlot);
  const int64_t nb = k / Q::kBlockElems, rb = ggml::row_bytes(Q::kType, k);
  Rng rng(seed);
  std::vector<float> x(size_t(rows * k));
  for (float& v : x) v = float(rng.normal());
  std::vector<uint8_t> q(size_t(rows * rb));
  for (int64_t r = 0; r < rows; ++r)
    ggml::quantize_row(Q::kType, &x[size_t(r * k)], &q[size_t(r * rb)], k);
  std::vector<float> ref(size_t(rows * k));
  for (int64_t r = 0; r < rows; ++r)
    ggml::dequantize_row(Q::kType, &q[size_t(r * rb)], &ref[size_t(r * k)], k);

  const int64_t row_stride = nb * Q::kSlot;
  std::vector<Chunk> dev(size_t((rows * row_stride + 15) / 16));
  uint8_t* d = dev.data()->b;
  gg::repack_rows(Q::kType, q.data(), rows, nb, tr.block_bytes, d);

  std::vector<float> got(size_t(rows * k), NAN);
  std::vector<int> seen(size_t(rows * k), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t v = 0; v < nb * Q::kUnits; ++v) {  // the kernels' unit order
      const int64_t b = v / Q::kUnits;
      const int u = int(v % Q::kUnits);
      float w[Q::kRuns * Q::kRunLen];
      Q::dequant(d + r * row_stride + b * Q::kSlot, u, w);
      for (int run = 0; run < Q::kRuns; ++run) {
        const int s = Q::run_start(u, run);
        ASSERT_EQ(s % 8, 0);
        ASSERT_LE(s + Q::kRunLen, Q::kBlockElems);
        for (int i = 0; i < Q::kRunLen; ++i) {
          const size_t e = size_t(r * k + b * Q::kBlockElems + s + i);
          got[e] = w[run * Q::kRunLen + i];
          ++seen[e];
        }
      }
    }
  }
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (seen[i] != 1 || std::memcmp(&got[i], &ref[i], 4) != 0) {
      if (++bad <= 5)
        ADD_FAILURE() << "element " << i << ": got " << got[i] << " want " << ref[i] << " (seen "
                      << seen[i] << ")";
    }
  }
  EXPECT_EQ(bad, 0);
}

// The GEMV's lane work (gg::gemv_lane) summed over a warp's 32 lanes, warp groups of kRows rows
// as the kernel forms them (a last partial group reads its last row twice, writes it once),
// against a float64 product of the dequantized rows.
template <class Q, int kMaxT, int kRows>
void check_gemv(int64_t n_rows, int64_t k, int T, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "gemv " << ggml::traits(Q::kType).name << " " << n_rows
                                    << "x" << k << " T=" << T << " rows/warp " << kRows);
  const ggml::TypeTraits& tr = ggml::traits(Q::kType);
  const int64_t nb = k / Q::kBlockElems, rb = ggml::row_bytes(Q::kType, k);
  const int64_t stride = gg::device_row_stride(Q::kType, k);
  ASSERT_EQ(stride % 16, 0);
  Rng rng(seed);
  std::vector<float> w(size_t(n_rows * k)), x(size_t(T * k));
  for (float& v : w) v = float(rng.normal());
  for (float& v : x) v = float(rng.normal());
  std::vector<uint8_t> q(size_t(n_rows * rb));
  std::vector<Chunk> dev(size_t(n_rows * stride / 16));
  uint8_t* d = dev.data()->b;
  for (int64_t r = 0; r < n_rows; ++r) {
    ggml::quantize_row(Q::kType, &w[size_t(r * k)], &q[size_t(r * rb)], k);
    ggml::dequantize_row(Q::kType, &q[size_t(r * rb)], &w[size_t(r * k)], k);
    gg::repack_rows(Q::kType, &q[size_t(r * rb)], 1, nb, tr.block_bytes, d + r * stride);
  }
  auto load8 = [&](int t, int64_t e, float* f) {
    for (int j = 0; j < 8; ++j) f[j] = x[size_t(t * k + e + j)];
  };
  double num = 0, den = 0;
  for (int64_t n0 = 0; n0 < n_rows; n0 += kRows) {
    const uint8_t* rows[kRows];
    for (int r = 0; r < kRows; ++r) rows[r] = d + std::min(n0 + r, n_rows - 1) * stride;
    double sum[kRows][kMaxT] = {};
    for (int lane = 0; lane < 32; ++lane) {
      float acc[kRows][kMaxT];
      gg::gemv_lane<Q, kMaxT, kRows>(rows, int(nb), lane, T, load8, acc);
      for (int r = 0; r < kRows; ++r)
        for (int t = 0; t < T; ++t) sum[r][t] += acc[r][t];
    }
    for (int r = 0; r < kRows && n0 + r < n_rows; ++r) {
      for (int t = 0; t < T; ++t) {
        double ref = 0;
        for (int64_t i = 0; i < k; ++i)
          ref += double(w[size_t((n0 + r) * k + i)]) * double(x[size_t(t * k + i)]);
        num += (sum[r][t] - ref) * (sum[r][t] - ref);
        den += ref * ref;
      }
    }
  }
  EXPECT_LT(std::sqrt(num / den), 1e-5);
}

template <class Q>
void check_shapes() {
  const int64_t k1 = Q::kBlockElems == 32 ? 896 : 1024;
  check_type<Q>(3, k1, 1);
  check_type<Q>(5, Q::kBlockElems * 3, 2);
  check_type<Q>(1, 4096, 3);
  check_gemv<Q, 1, 1>(5, k1, 1, 4);
  check_gemv<Q, 4, 2>(5, k1, 3, 5);
  check_gemv<Q, 16, 1>(3, Q::kBlockElems * 3, 16, 6);
  check_gemv<Q, 4, 2>(3, 4096, 4, 7);
  check_gemv<Q, 1, 1>(3, 4096 + 3 * Q::kBlockElems, 1, 8);  // several steps a lane, a tail
  check_gemv<Q, 16, 1>(2, 4096, 11, 9);
}

TEST(GgmlBlocksEmulation, Q4_0) {
  check_shapes<gg::Q4_0>();
}
TEST(GgmlBlocksEmulation, Q4_1) {
  check_shapes<gg::Q4_1>();
}
TEST(GgmlBlocksEmulation, Q5_0) {
  check_shapes<gg::Q5_0>();
}
TEST(GgmlBlocksEmulation, Q5_1) {
  check_shapes<gg::Q5_1>();
}
TEST(GgmlBlocksEmulation, Q8_0) {
  check_shapes<gg::Q8_0>();
}
TEST(GgmlBlocksEmulation, IQ4_NL) {
  check_shapes<gg::IQ4_NL>();
}
TEST(GgmlBlocksEmulation, Q2_K) {
  check_shapes<gg::Q2_K>();
}
TEST(GgmlBlocksEmulation, Q3_K) {
  check_shapes<gg::Q3_K>();
}
TEST(GgmlBlocksEmulation, Q4_K) {
  check_shapes<gg::Q4_K>();
}
TEST(GgmlBlocksEmulation, Q5_K) {
  check_shapes<gg::Q5_K>();
}
TEST(GgmlBlocksEmulation, Q6_K) {
  check_shapes<gg::Q6_K>();
}

// ---- the tensor-core GEMV (ggml_mma.h) ---------------------------------------------------------

float bf16_half(uint32_t v, int i) {
  return bf16_to_f32(uint16_t(v >> (16 * i)));
}

// mma.sync.m16n8k16.row.col bf16 -> f32 over a warp's registers, from the PTX ISA's fragment
// layouts: c[lane] += A B.
void emulate_mma(const uint32_t (*a)[4], const uint32_t (*b)[2], float (*c)[4]) {
  float A[16][16], B[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, tq = lane % 4;
    for (int i = 0; i < 2; ++i) {
      A[g][2 * tq + i] = bf16_half(a[lane][0], i);
      A[g + 8][2 * tq + i] = bf16_half(a[lane][1], i);
      A[g][2 * tq + 8 + i] = bf16_half(a[lane][2], i);
      A[g + 8][2 * tq + 8 + i] = bf16_half(a[lane][3], i);
      B[2 * tq + i][g] = bf16_half(b[lane][0], i);
      B[2 * tq + 8 + i][g] = bf16_half(b[lane][1], i);
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, tq = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const int m = g + 8 * (i / 2), n = 2 * tq + i % 2;
      double s = 0;
      for (int k = 0; k < 16; ++k) s += double(A[m][k]) * double(B[k][n]);
      c[lane][i] += float(s);
    }
  }
}

// A warp of ggml_mma_gemv_kernel (rows n0 .. n0 + 16, clamped; tokens in n-tiles of 8, clamped)
// against a float64 product of the dequantized rows; x rounded to bf16 (the kernel's input).
template <class M>
void check_mma_gemv(int64_t n_rows, int64_t k, int T, uint64_t seed) {
  using Q = typename M::Q;
  SCOPED_TRACE(::testing::Message() << "mma gemv " << ggml::traits(Q::kType).name << " " << n_rows
                                    << "x" << k << " T=" << T);
  const ggml::TypeTraits& tr = ggml::traits(Q::kType);
  const int64_t nb = k / M::kElems, rb = ggml::row_bytes(Q::kType, k);
  ASSERT_EQ(k % M::kElems, 0);
  const int64_t stride = gg::device_row_stride(Q::kType, k);
  Rng rng(seed);
  std::vector<float> w(size_t(n_rows * k)), x(size_t(T * k));
  for (float& v : w) v = float(rng.normal());
  for (float& v : x) v = bf16_to_f32(f32_to_bf16(float(rng.normal())));
  std::vector<uint16_t> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = f32_to_bf16(x[i]);
  std::vector<uint8_t> q(size_t(n_rows * rb));
  std::vector<Chunk> dev(size_t(n_rows * stride / 16));
  uint8_t* d = dev.data()->b;
  for (int64_t r = 0; r < n_rows; ++r) {
    ggml::quantize_row(Q::kType, &w[size_t(r * k)], &q[size_t(r * rb)], k);
    ggml::dequantize_row(Q::kType, &q[size_t(r * rb)], &w[size_t(r * k)], k);
    gg::repack_rows(Q::kType, &q[size_t(r * rb)], 1, k / Q::kBlockElems, tr.block_bytes,
                    d + r * stride);
  }
  const int n_tiles = (T + 7) / 8;
  double num = 0, den = 0;
  for (int64_t n0 = 0; n0 < n_rows; n0 += 16) {
    std::vector<float> acc(size_t(n_tiles * 32 * 4), 0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      typename M::Rows rows[32][2];
      for (int lane = 0; lane < 32; ++lane) {
        for (int h = 0; h < 2; ++h) {
          const int64_t n = std::min(n0 + lane / 4 + 8 * h, n_rows - 1);
          M::load(d + n * stride + b * M::kBytes, lane % 4, &rows[lane][h]);
        }
      }
      for (int sub = 0; sub < M::kSubs; ++sub) {
        for (int nt = 0; nt < n_tiles; ++nt) {
          float cq[32][4] = {}, cx[32][4] = {};
          for (int j = 0; j < M::kStepsPerSub; ++j) {
            const int step = sub * M::kStepsPerSub + j;
            uint32_t a[32][4], ones[32][4], bx[32][2];
            for (int lane = 0; lane < 32; ++lane) {
              M::a_regs(rows[lane][0], rows[lane][1], step, a[lane]);
              for (int i = 0; i < 4; ++i) ones[lane][i] = gg::kBf16x2Ones;
              const int t = std::min(8 * nt + lane / 4, T - 1);
              const int64_t e = b * M::kElems + M::x_elem(step, lane % 4);
              ASSERT_EQ(e % 4, 0);
              std::memcpy(bx[lane], &xb[size_t(t * k + e)], 8);
            }
            emulate_mma(a, bx, cq);
            emulate_mma(ones, bx, cx);
          }
          for (int lane = 0; lane < 32; ++lane) {
            float dg, mg, dg8, mg8;
            M::scale(rows[lane][0], sub, &dg, &mg);
            M::scale(rows[lane][1], sub, &dg8, &mg8);
            gg::mma_epilogue<M>(dg, mg, dg8, mg8, cq[lane], cx[lane],
                                &acc[size_t((nt * 32 + lane) * 4)]);
          }
        }
      }
    }
    for (int nt = 0; nt < n_tiles; ++nt) {
      for (int lane = 0; lane < 32; ++lane) {
        for (int i = 0; i < 4; ++i) {
          const int64_t n = n0 + lane / 4 + 8 * (i / 2);
          const int t = 8 * nt + 2 * (lane % 4) + i % 2;
          if (n >= n_rows || t >= T) continue;
          double ref = 0;
          for (int64_t e = 0; e < k; ++e)
            ref += double(w[size_t(n * k + e)]) * double(x[size_t(t * k + e)]);
          const double got = acc[size_t((nt * 32 + lane) * 4 + i)];
          num += (got - ref) * (got - ref);
          den += ref * ref;
        }
      }
    }
  }
  EXPECT_LT(std::sqrt(num / den), 1e-5);
}

TEST(GgmlBlocksEmulation, MmaGemvQ4_K) {
  check_mma_gemv<gg::Q4KMma>(16, 256, 1, 1);
  check_mma_gemv<gg::Q4KMma>(21, 1024, 5, 2);
  check_mma_gemv<gg::Q4KMma>(40, 512, 16, 3);
  check_mma_gemv<gg::Q4KMma>(7, 768, 11, 4);
}

TEST(GgmlBlocksEmulation, MmaGemvQ2_KQ3_K) {
  check_mma_gemv<gg::Q2KMma>(16, 256, 1, 31);
  check_mma_gemv<gg::Q2KMma>(21, 1024, 5, 32);
  check_mma_gemv<gg::Q2KMma>(40, 512, 16, 33);
  check_mma_gemv<gg::Q3KMma>(16, 256, 1, 34);
  check_mma_gemv<gg::Q3KMma>(21, 1024, 5, 35);
  check_mma_gemv<gg::Q3KMma>(40, 512, 16, 36);
}

TEST(GgmlBlocksEmulation, MmaGemvQ5_K) {
  check_mma_gemv<gg::Q5KMma>(16, 256, 1, 21);
  check_mma_gemv<gg::Q5KMma>(21, 1024, 5, 22);
  check_mma_gemv<gg::Q5KMma>(40, 512, 16, 23);
}

TEST(GgmlBlocksEmulation, MmaGemvQ6_K) {
  check_mma_gemv<gg::Q6KMma>(16, 256, 1, 5);
  check_mma_gemv<gg::Q6KMma>(21, 1024, 5, 6);
  check_mma_gemv<gg::Q6KMma>(40, 512, 16, 7);
  check_mma_gemv<gg::Q6KMma>(7, 768, 11, 8);
}

template <class Q>
void check_legacy_mma() {
  using M = gg::LegacyMma<Q>;
  check_mma_gemv<M>(16, 128, 1, 11);
  check_mma_gemv<M>(21, 896, 5, 12);
  check_mma_gemv<M>(40, 512, 16, 13);
  check_mma_gemv<M>(7, 384, 11, 14);
}

TEST(GgmlBlocksEmulation, MmaGemvLegacy) {
  check_legacy_mma<gg::Q4_0>();
  check_legacy_mma<gg::Q4_1>();
  check_legacy_mma<gg::Q5_0>();
  check_legacy_mma<gg::Q5_1>();
  check_legacy_mma<gg::Q8_0>();
  check_legacy_mma<gg::IQ4_NL>();
}

// The bf16 quant fragments hold q - off exactly, byte pairs in register order.
TEST(GgmlBlocksEmulation, Bf16PairsOfBytes) {
  for (uint32_t v : {0x00000000u, 0x7F3F1F0Fu, 0x01020304u, 0x3F003F00u})
    for (int off : {0, 32})
      for (int i = 0; i < 2; ++i)
        for (int h = 0; h < 2; ++h)
          EXPECT_EQ(bf16_half(gg::bf16x2_of_bytes(v, i, off), h),
                    float(int(gg::byte_of(v, 2 * i + h)) - off));
  for (uint32_t v : {0x807F01FFu, 0x00C04080u})
    for (int i = 0; i < 2; ++i)
      for (int h = 0; h < 2; ++h)
        EXPECT_EQ(bf16_half(gg::bf16x2_of_int8(v, i), h),
                  float(int8_t(uint8_t(gg::byte_of(v, 2 * i + h)))));
  for (uint32_t n = 0; n < 16; ++n)
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(gg::byte_of(gg::with_fifth_bits(0, n << 3, 3), i), ((n >> i) & 1u) << 4);
  for (uint32_t n = 0; n < 16; ++n) {  // every level in every byte
    const uint32_t v = n | ((15 - n) << 8) | (((n + 5) % 16) << 16) | (((n * 7) % 16) << 24);
    const uint32_t l = gg::iq4nl_levels(v);
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(int(int8_t(uint8_t(gg::byte_of(l, i)))), gg::iq4nl_level(gg::byte_of(v, i)));
  }
}

// The integer-to-float shortcuts are exact over the ranges the decoders use.
TEST(GgmlBlocksEmulation, IntToFloatShortcutsAreExact) {
  for (int v = -1000; v <= 1000; ++v) EXPECT_EQ(gg::i2f(v), float(v)) << v;
  for (uint32_t q = 0; q < 1024; ++q)
    for (int off : {0, 8, 16, 32, 128}) EXPECT_EQ(gg::u2f(q, off), float(int(q) - off)) << q;
}

// Half-precision fields decode exactly, subnormals and specials included.
TEST(GgmlBlocksEmulation, HalfToFloatIsExact) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float a = gg::half_to_float(h), b = f16_to_f32(uint16_t(h));
    if (std::isnan(b)) {
      EXPECT_TRUE(std::isnan(a)) << h;
    } else {
      EXPECT_EQ(std::memcmp(&a, &b, 4), 0) << h;
    }
  }
}

}  // namespace
}  // namespace inferd
