// M-RoPE on the CPU (issue 34, Qwen2.5-VL's language side): the engine's per-row positions
// (add_mrope_positions, any chunking) equal transformers' get_rope_index as mrope_positions
// reproduces it, and the CPU rope turns each frequency section by its own position row.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "engine/image_spans.h"
#include "media/image_processor.h"
#include "model/vision/mrope_positions.h"

namespace inferd {
namespace {

ImageInput image(int32_t pos, std::array<int32_t, 3> grid) {
  auto pv = std::make_shared<media::PixelValues>();
  pv->grid_thw = grid;
  ImageInput in;
  in.position = pos;
  in.num_tokens = grid[0] * grid[1] * grid[2] / 4;
  in.pixels = pv;
  return in;
}

TEST(MropeRows, EngineRowsAreGetRopeIndexInAnyChunking) {
  // text 3, image 4x6 patches (2x3 merged: 6 tokens), text 2, image 8x4 (4x2: 8), text 4.
  const std::vector<ImageInput> im = {image(3, {1, 4, 6}), image(11, {1, 8, 4})};
  std::vector<int32_t> tokens(23, 5);
  for (const ImageInput& i : im)
    std::fill(tokens.begin() + i.position, tokens.begin() + i.position + i.num_tokens, 9);
  const std::array<int32_t, 3> grids[] = {{1, 4, 6}, {1, 8, 4}};
  const MropePositions ref = mrope_positions(tokens, 9, grids, 2);
  for (int32_t chunk : {1, 4, 7, 23}) {
    std::vector<int32_t> t, h, w;
    for (int32_t p = 0; p < 23; p += chunk)
      add_mrope_positions(t, h, w, im, p, std::min(23, p + chunk));
    EXPECT_EQ(t, ref.ids[0]) << chunk;
    EXPECT_EQ(h, ref.ids[1]) << chunk;
    EXPECT_EQ(w, ref.ids[2]) << chunk;
  }
  // Generated tokens: position i + rope_delta in all three.
  std::vector<int32_t> t, h, w;
  add_mrope_positions(t, h, w, im, 23, 25);
  EXPECT_EQ(t, (std::vector<int32_t>{23 + ref.rope_delta, 24 + ref.rope_delta}));
  EXPECT_EQ(h, t);
  EXPECT_EQ(w, t);
}

TEST(MropeRows, CpuRopeTurnsEachSectionByItsPosition) {
  auto be = make_cpu_backend(1);
  const int64_t hd = 12, half = 6;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) inv[size_t(i)] = float(std::pow(100.0, -double(i) / half));
  RopeTable rope;
  rope.inv_freq = Tensor(inv.data(), DType::kF32, {half});
  rope.head_dim = hd;
  rope.mrope_section = {2, 2, 2};
  std::vector<float> qkv(size_t(2 * hd), 1.0f);  // one row: one q head, one k head
  const int32_t positions[] = {7};
  const int32_t mrope[] = {3, 5, 11};  // [3, T = 1]
  DeviceBatch b;
  b.num_tokens = 1;
  b.positions = positions;
  b.mrope_positions = mrope;
  be->rope(Tensor(qkv.data(), DType::kF32, {1, 2 * hd}), 1, 1, rope, b);
  for (int64_t i = 0; i < half; ++i) {
    const double pos = i < 2 ? 3 : i < 4 ? 5 : 11;
    const double a = double(float(pos) * inv[size_t(i)]);
    EXPECT_NEAR(qkv[size_t(i)], std::cos(a) - std::sin(a), 1e-5) << i;
    EXPECT_NEAR(qkv[size_t(i + half)], std::cos(a) + std::sin(a), 1e-5) << i;
  }
}

}  // namespace
}  // namespace inferd
