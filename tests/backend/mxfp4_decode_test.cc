// Host emulation of the CUDA MoE kernels' MXFP4 decoding (backend/cuda/mxfp4_decode.h): rows read
// the way moe.cu reads them (a 4-byte word of 8 codes in the grouped GEMM's load stage, a 16-byte
// chunk of 32 codes with its one scale in the decode GEMVs) give exactly the values of the
// loader's dequantization (model/quant/mxfp4.cc, the CPU's experts), every code and every e8m0
// scale included. Runs without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cuda/mxfp4_decode.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "model/quant/mxfp4.h"

namespace inferd {
namespace {

namespace mx = cuda::mx;

TEST(Mxfp4Decode, CodesAndScalesMatchTheTable) {
  for (uint32_t c = 0; c < 16; ++c) {
    EXPECT_EQ(mx::e2m1_value(c), mxfp4_value(uint8_t(c))) << c;
    EXPECT_EQ(std::signbit(mx::e2m1_value(c)), c >= 8) << c;
  }
  for (uint32_t s = 0; s < 255; ++s) EXPECT_EQ(mx::e8m0_scale(s), std::ldexp(1.0f, int(s) - 127));
}

TEST(Mxfp4Decode, KernelReadsEqualTheLoadersDequantization) {
  constexpr int64_t kRows = 7, kIn = 96;  // three scale groups a row
  Rng rng(4);
  std::vector<uint8_t> blocks(size_t(kRows * kIn / 2)), scales(size_t(kRows * kIn / 32));
  for (uint8_t& b : blocks) b = uint8_t(rng.next_u64());
  for (size_t i = 0; i < scales.size(); ++i)  // the extremes and values near 127
    scales[i] = i == 0 ? 0 : i == 1 ? 254 : uint8_t(110 + rng.next_u64() % 30);
  std::vector<uint16_t> want(size_t(kRows * kIn));
  dequantize_mxfp4(blocks.data(), scales.data(), kRows, kIn, want.data());
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t k = 0; k < kIn; k += 8) {  // the grouped GEMM's load8: one word, 8 codes
      uint32_t word;
      std::memcpy(&word, blocks.data() + (r * kIn + k) / 2, 4);
      const float scale = mx::e8m0_scale(scales[size_t((r * kIn + k) / 32)]);
      for (int j = 0; j < 8; ++j) {
        const float v = mx::e2m1_value(mx::code_of(word, j)) * scale;
        ASSERT_EQ(f32_to_bf16(v), want[size_t(r * kIn + k + j)]) << "row " << r << " k " << k + j;
      }
    }
    for (int64_t k = 0; k < kIn; k += 32) {  // the GEMVs' chunk: four words, one scale
      uint32_t words[4];
      std::memcpy(words, blocks.data() + (r * kIn + k) / 2, 16);
      const float scale = mx::e8m0_scale(scales[size_t((r * kIn + k) / 32)]);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 8; ++j) {
          const float v = mx::e2m1_value(mx::code_of(words[i], j)) * scale;
          ASSERT_EQ(f32_to_bf16(v), want[size_t(r * kIn + k + 8 * i + j)])
              << "row " << r << " k " << k + 8 * i + j;
        }
    }
  }
}

}  // namespace
}  // namespace inferd
