#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"

namespace inferd {
namespace {

TEST(DType, Bf16RoundTripAndRounding) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-2.5f)), -2.5f);
  // 1 + 2^-8 is exactly halfway between two bf16 values: rounds to even (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-12f)), 1.0f + 0x1p-7f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  Rng rng(7);
  for (int i = 0; i < 10000; ++i) {
    float x = float(rng.normal() * 100.0);
    float y = bf16_to_f32(f32_to_bf16(x));
    EXPECT_LE(std::fabs(x - y), std::fabs(x) * 0x1p-8f) << x;
  }
}

TEST(DType, F16ExactForEveryHalf) {
  // Every finite half converts to float and back unchanged.
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const uint16_t hh = uint16_t(h);
    const float f = f16_to_f32(hh);
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), hh) << std::hex << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds to +inf
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);  // halfway to the smallest subnormal: ties to even
  EXPECT_EQ(f32_to_f16(0x1p-25f * 1.5f), 0x0001);
}

TEST(DType, ParseNamesAndRejectUnknown) {
  EXPECT_EQ(parse_dtype("bf16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("float16"), DType::kF16);
  EXPECT_EQ(parse_dtype("float32"), DType::kF32);
  try {
    parse_dtype("int3");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("int3"), std::string::npos);
  }
}

}  // namespace
}  // namespace inferd
