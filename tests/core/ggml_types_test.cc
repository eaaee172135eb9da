// Tests of core/ggml_types: dequantize_row of hand-made blocks against hand-computed values (so a
// wrong nibble or bit order fails without fixtures), bit-exact against gguf-py's dequantization on
// random blocks (tests/data/ggml_blocks, written by tools/make_ggml_block_fixtures.py), the round
// trip of quantize_row within a per-type error bound, and the type table.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/ggml_types.h"

namespace inferd::ggml {
namespace {

constexpr uint16_t kHalf0_125 = 0x3000, kHalf0_25 = 0x3400, kHalf0_5 = 0x3800, kHalf1 = 0x3C00,
                   kHalfMinus1 = 0xBC00;

std::vector<float> dequant(Type t, const void* src, int64_t n) {
  std::vector<float> y(size_t(n), NAN);
  dequantize_row(t, src, y.data(), n);
  return y;
}

// Element k (0..31) of a legacy block's packed nibbles: low nibbles are elements 0..15.
int nibble(const uint8_t* qs, int k) {
  return k < 16 ? qs[k] & 0xF : qs[k - 16] >> 4;
}

TEST(GgmlDequant, Q4_0HandMade) {
  BlockQ4_0 b{};
  b.d = kHalf0_5;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(Type::kQ4_0, &b, 32);
  EXPECT_EQ(y[0], -4.0f);   // (0 - 8) * 0.5
  EXPECT_EQ(y[15], 3.5f);   // (15 - 8) * 0.5
  EXPECT_EQ(y[16], 3.5f);   // high nibble of qs[0] = 15
  EXPECT_EQ(y[31], -4.0f);  // high nibble of qs[15] = 0
  for (int k = 0; k < 32; ++k) EXPECT_EQ(y[k], float(nibble(b.qs, k) - 8) * 0.5f) << k;
}

TEST(GgmlDequant, Q4_1HandMade) {
  BlockQ4_1 b{};
  b.d = kHalf0_25;
  b.m = kHalfMinus1;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(Type::kQ4_1, &b, 32);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[1], -0.75f);
  EXPECT_EQ(y[16], 2.75f);  // 15 * 0.25 - 1
  for (int k = 0; k < 32; ++k) EXPECT_EQ(y[k], float(nibble(b.qs, k)) * 0.25f - 1.0f) << k;
}

TEST(GgmlDequant, Q5_0HandMade) {
  BlockQ5_0 b{};
  b.d = kHalf0_5;
  const uint32_t qh = 0xF0F05555u;  // bits 0,2,4,..,14; 20..23; 28..31
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(Type::kQ5_0, &b, 32);
  EXPECT_EQ(y[0], 0.0f);    // (0 | 16) - 16
  EXPECT_EQ(y[1], -7.5f);   // (1 | 0) - 16
  EXPECT_EQ(y[16], -0.5f);  // element 16: nibble 15, bit 16 clear
  EXPECT_EQ(y[20], 5.5f);   // element 20: nibble 11, bit 20 set: 27 - 16
  for (int k = 0; k < 32; ++k) {
    const int q = nibble(b.qs, k) | int(((qh >> k) & 1) << 4);
    EXPECT_EQ(y[k], float(q - 16) * 0.5f) << k;
  }
}

TEST(GgmlDequant, Q5_1HandMade) {
  BlockQ5_1 b{};
  b.d = kHalf0_125;
  b.m = kHalf1;
  const uint32_t qh = 0x80000001u;
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(Type::kQ5_1, &b, 32);
  EXPECT_EQ(y[0], 3.0f);     // 16 * 0.125 + 1
  EXPECT_EQ(y[31], 3.0f);    // (0 | 16) * 0.125 + 1
  EXPECT_EQ(y[30], 1.125f);  // nibble 1, bit 30 clear
  for (int k = 0; k < 32; ++k) {
    const int q = nibble(b.qs, k) | int(((qh >> k) & 1) << 4);
    EXPECT_EQ(y[k], float(q) * 0.125f + 1.0f) << k;
  }
}

TEST(GgmlDequant, Q8_0HandMade) {
  BlockQ8_0 b{};
  b.d = kHalf0_125;
  for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(j - 16);
  const auto y = dequant(Type::kQ8_0, &b, 32);
  for (int k = 0; k < 32; ++k) EXPECT_EQ(y[k], float(k - 16) * 0.125f) << k;
}

TEST(GgmlDequant, IQ4_NLHandMade) {
  BlockIQ4_NL b{};
  b.d = kHalf0_5;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(Type::kIQ4_NL, &b, 32);
  EXPECT_EQ(y[0], -63.5f);  // -127 / 2
  EXPECT_EQ(y[16], 56.5f);  // 113 / 2
  EXPECT_EQ(y[8], 0.5f);    // 1 / 2
  for (int k = 0; k < 32; ++k) EXPECT_EQ(y[k], 0.5f * float(kIq4nlValues[nibble(b.qs, k)])) << k;
}

// Q8_K is not in gguf-py: a constructed block with its values computed here.
TEST(GgmlDequant, Q8_KHandMade) {
  BlockQ8_K b{};
  b.d = 0.25f;
  for (int j = 0; j < kQKK; ++j) b.qs[j] = int8_t(j - 128);
  const auto y = dequant(Type::kQ8_K, &b, kQKK);
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[255], 31.75f);
  for (int k = 0; k < kQKK; ++k) EXPECT_EQ(y[k], float(k - 128) * 0.25f) << k;
}

// Q6_K: element 128 h + 32 s + l sits in ql[64 h + 32 (s % 2) + l] (nibble s / 2) and in bits 2s of
// qh[32 h + l]. One element set per group of 32 checks the order.
TEST(GgmlDequant, Q6_KHandMade) {
  BlockQ6_K b{};
  for (auto& v : b.ql) v = 0x00;
  for (auto& v : b.qh) v = 0xAA;  // high 2 bits = 2 everywhere: value q - 32 = the low 4 bits
  for (int s = 0; s < 16; ++s) b.scales[s] = int8_t(s - 8);
  b.d = kHalf0_5;
  b.ql[64 + 32 + 5] = 0x39;  // half 1, s = 1 (low nibble 9) and s = 3 (high nibble 3), l = 5
  const auto y = dequant(Type::kQ6_K, &b, kQKK);
  EXPECT_EQ(y[128 + 32 + 5], 0.5f * float((128 + 32 + 5) / 16 - 8) * 9.0f);
  EXPECT_EQ(y[128 + 96 + 5], 0.5f * float((128 + 96 + 5) / 16 - 8) * 3.0f);
  for (int k = 0; k < kQKK; ++k) {
    if (k == 128 + 32 + 5 || k == 128 + 96 + 5) continue;
    EXPECT_EQ(y[k], 0.0f) << k;
  }
}

// Q4_K: sub-block j (32 elements) has scale/min j of scale_min_k4; low nibbles of qs[0..32) are
// elements 0..31, high nibbles elements 32..63.
TEST(GgmlDequant, Q4_KHandMade) {
  BlockQ4_K b{};
  b.d = kHalf1;
  b.dmin = kHalf0_5;
  // The 6-bit packing: j < 4 in the low 6 bits of bytes j, j + 4; j >= 4 split over byte j + 4
  // (low nibbles) and the top 2 bits of bytes j - 4 (scale) and j (min).
  const int sc[8] = {1, 2, 3, 4, 5, 6, 7, 40}, mn[8] = {0, 2, 4, 6, 8, 10, 12, 50};
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
    b.scales[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  for (int l = 0; l < 32; ++l) b.qs[l] = uint8_t(l % 16 | (3 << 4));
  for (int l = 32; l < 128; ++l) b.qs[l] = uint8_t(0x21);
  const auto y = dequant(Type::kQ4_K, &b, kQKK);
  EXPECT_EQ(y[5], 5.0f);         // 1 * 5 - 0
  EXPECT_EQ(y[32 + 5], 5.0f);    // 2 * 3 - 0.5 * 2
  EXPECT_EQ(y[192 + 1], 1.0f);   // sub-block 6, low nibble 1: 7 * 1 - 0.5 * 12
  EXPECT_EQ(y[224 + 1], 55.0f);  // sub-block 7, high nibble 2: 40 * 2 - 0.5 * 50
  for (int k = 0; k < kQKK; ++k) {
    const int j = k / 32, l = k % 32;
    const int q = (b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
    EXPECT_EQ(y[k], float(sc[j]) * float(q) - 0.5f * float(mn[j])) << k;
  }
}

}  // namespace
}  // namespace inferd::ggml
