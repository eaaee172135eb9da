// Tests of core/ggml_types: dequantize_row of hand-made blocks against hand-computed values (so a
// wrong nibble or bit order fails without fixtures), bit-exact against gguf-py's dequantization on
// random blocks (tests/data/ggml_blocks, written by tools/make_ggml_block_fixtures.py), the round
// trip of quantize_row within a per-type error bound, and the type table.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
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

// ---- Bit-exact against gguf-py on random blocks
// --------------------------------------------------

struct Fixture {
  uint32_t type = 0;
  uint32_t blocks = 0;
  std::vector<uint8_t> raw;
  std::vector<float> values;
};

Fixture read_fixture(const std::string& name) {
  const std::string path = std::string(INFERD_TEST_DATA_DIR) + "/ggml_blocks/" + name + ".bin";
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Fixture fx;
  if (bytes.size() < 12 || std::memcmp(bytes.data(), "GBLK", 4) != 0) {
    ADD_FAILURE() << path << ": not a fixture file";
    return fx;
  }
  std::memcpy(&fx.type, bytes.data() + 4, 4);
  std::memcpy(&fx.blocks, bytes.data() + 8, 4);
  const auto tr = type_traits(fx.type);
  if (!tr) {
    ADD_FAILURE() << path << ": unknown type id " << fx.type;
    return fx;
  }
  const size_t raw_bytes = size_t(fx.blocks) * size_t(tr->block_bytes);
  const size_t n = size_t(fx.blocks) * size_t(tr->block_elems);
  if (bytes.size() != 12 + raw_bytes + 4 * n) {
    ADD_FAILURE() << path << ": " << bytes.size() << " bytes, expected " << 12 + raw_bytes + 4 * n;
    return fx;
  }
  fx.raw.assign(bytes.begin() + 12, bytes.begin() + 12 + std::ptrdiff_t(raw_bytes));
  fx.values.resize(n);
  std::memcpy(fx.values.data(), bytes.data() + 12 + raw_bytes, 4 * n);
  return fx;
}

class GgmlFixture : public testing::TestWithParam<const char*> {};

TEST_P(GgmlFixture, BitExactWithGgufPy) {
  const Fixture fx = read_fixture(GetParam());
  ASSERT_FALSE(fx.values.empty());
  std::string name(type_name(fx.type));  // ggml's names: "q4_K"; the files' names: "q4_k"
  for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(name, GetParam());
  std::vector<float> y(fx.values.size(), NAN);
  dequantize_row(Type(fx.type), fx.raw.data(), y.data(), int64_t(y.size()));
  if (std::memcmp(y.data(), fx.values.data(), 4 * y.size()) != 0) {
    const int64_t block = traits(Type(fx.type)).block_elems;
    for (size_t i = 0; i < y.size(); ++i) {
      if (std::memcmp(&y[i], &fx.values[i], 4) != 0) {
        ADD_FAILURE() << GetParam() << ": first mismatch at element " << i << " (block "
                      << int64_t(i) / block << ", element " << int64_t(i) % block << "): got "
                      << y[i] << ", gguf-py " << fx.values[i];
        break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlFixture,
                         testing::Values("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1",
                                         "q8_0", "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"));

// ---- quantize_row -> dequantize_row round trip
// ---------------------------------------------------

struct Bound {
  Type type;
  double max_rel_rms;
};

class GgmlRoundTrip : public testing::TestWithParam<Bound> {};

// sqrt(sum (x - y)^2 / sum x^2) over elements [lo, hi).
double rel_rms(const std::vector<float>& x, const std::vector<float>& y, size_t lo, size_t hi) {
  double err = 0, ref = 0;
  for (size_t i = lo; i < hi; ++i) {
    err += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

TEST_P(GgmlRoundTrip, ErrorWithinBound) {
  const Bound b = GetParam();
  const TypeTraits& tr = traits(b.type);
  const int64_t n = 4096;
  std::mt19937 gen(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(gen);
  // Half N(0, 1), a quarter offset by 3, a quarter small and negative (for the min / max
  // quantizers and the signed scales).
  for (int64_t i = n / 2; i < 3 * n / 4; ++i) x[size_t(i)] += 3.0f;
  for (int64_t i = 3 * n / 4; i < n; ++i) x[size_t(i)] = -std::fabs(x[size_t(i)]) * 0.01f;
  std::vector<uint8_t> q(size_t(row_bytes(b.type, n)));
  quantize_row(b.type, x.data(), q.data(), n);
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(b.type, q.data(), y.data(), n);
  // Each part on its own: N(0, 1); N(3, 1); small values of one sign.
  const size_t h = size_t(n) / 2, q3 = 3 * size_t(n) / 4;
  const double e0 = rel_rms(x, y, 0, h), e1 = rel_rms(x, y, h, q3),
               e2 = rel_rms(x, y, q3, x.size());
  EXPECT_LT(e0, b.max_rel_rms) << tr.name << " N(0,1)";
  EXPECT_LT(e1, b.max_rel_rms) << tr.name << " N(3,1)";
  EXPECT_LT(e2, b.max_rel_rms) << tr.name << " -0.01|N(0,1)|";
  std::printf("%-7s rel-RMS N(0,1) %.4f  N(3,1) %.4f  -0.01|N(0,1)| %.4f\n",
              std::string(tr.name).c_str(), e0, e1, e2);

  // Zeros quantize to zeros (a zero scale must not divide by zero).
  std::vector<float> zeros(size_t(n), 0.0f), back(size_t(n), 1.0f);
  quantize_row(b.type, zeros.data(), q.data(), n);
  dequantize_row(b.type, q.data(), back.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(back[size_t(i)], 0.0f) << tr.name << " " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Types, GgmlRoundTrip,
    testing::Values(Bound{Type::kF32, 1e-12}, Bound{Type::kF16, 1e-3}, Bound{Type::kBF16, 5e-3},
                    Bound{Type::kQ8_0, 0.01}, Bound{Type::kQ8_K, 0.01}, Bound{Type::kQ6_K, 0.025},
                    Bound{Type::kQ5_0, 0.05}, Bound{Type::kQ5_1, 0.05}, Bound{Type::kQ5_K, 0.05},
                    Bound{Type::kQ4_0, 0.10}, Bound{Type::kQ4_1, 0.10}, Bound{Type::kQ4_K, 0.10},
                    Bound{Type::kIQ4_NL, 0.10}, Bound{Type::kQ3_K, 0.18}, Bound{Type::kQ2_K, 0.32}),
    [](const testing::TestParamInfo<Bound>& info) {
      return std::string(traits(info.param.type).name);
    });

TEST(GgmlQuant, Q8_KBsumsAreSumsOf16) {
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> dist(-2.0f, 1.0f);
  std::vector<float> x(2 * kQKK);
  for (auto& v : x) v = dist(gen);
  BlockQ8_K b[2];
  quantize_row(Type::kQ8_K, x.data(), b, 2 * kQKK);
  for (const BlockQ8_K& blk : b) {
    EXPECT_GT(blk.d, 0.0f);
    for (int g = 0; g < kQKK / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += blk.qs[16 * g + l];
      EXPECT_EQ(blk.bsums[g], sum) << g;
    }
  }
}

// ---- The type table and bad input
// -----------------------------------------------------------------

TEST(GgmlTypes, TableSizes) {
  EXPECT_EQ(traits(Type::kQ4_K).block_bytes, int64_t(sizeof(BlockQ4_K)));
  EXPECT_EQ(traits(Type::kQ8_K).block_bytes, int64_t(sizeof(BlockQ8_K)));
  EXPECT_EQ(traits(Type::kIQ4_NL).block_bytes, int64_t(sizeof(BlockIQ4_NL)));
  EXPECT_EQ(traits(Type::kQ5_1).block_bytes, int64_t(sizeof(BlockQ5_1)));
  EXPECT_EQ(row_bytes(Type::kQ6_K, 512), 420);
  EXPECT_EQ(row_bytes(Type::kBF16, 3), 6);
  EXPECT_EQ(type_name(uint32_t(Type::kIQ4_XS)), "iq4_xs");
  EXPECT_EQ(type_name(31), "type 31");
  EXPECT_FALSE(type_traits(31).has_value());
  EXPECT_FALSE(traits(Type::kIQ2_XXS).supported);
  EXPECT_TRUE(traits(Type::kQ3_K).supported);
}

TEST(GgmlTypes, BadInputIsAnError) {
  std::vector<uint8_t> raw(1024);
  std::vector<float> y(256);
  EXPECT_THROW(dequantize_row(Type::kIQ2_XXS, raw.data(), y.data(), 256), Error);
  EXPECT_THROW(dequantize_row(Type::kQ4_0, raw.data(), y.data(), 33), Error);
  EXPECT_THROW(quantize_row(Type::kQ4_K, y.data(), raw.data(), 128), Error);
  EXPECT_THROW(row_bytes(Type::kQ8_0, 31), Error);
}

}  // namespace
}  // namespace inferd::ggml
