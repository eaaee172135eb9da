// Qwen2-VL's 3-section rope positions (see mrope_positions.h), written from transformers'
// Qwen2_5_VLModel.get_rope_index.
#include "model/vision/mrope_positions.h"

#include <algorithm>

#include "core/error.h"

namespace inferd {

MropePositions mrope_positions(std::span<const int32_t> tokens, int32_t image_token_id,
                               std::span<const std::array<int32_t, 3>> grids,
                               int32_t spatial_merge_size) {
  MropePositions out;
  for (auto& v : out.ids) v.reserve(tokens.size());
  int32_t next = 0;  // one more than the largest position so far
  size_t i = 0, image = 0;
  auto text = [&](size_t end) {
    for (; i < end; ++i, ++next)
      for (auto& v : out.ids) v.push_back(next);
  };
  while (i < tokens.size()) {
    const auto it = std::find(tokens.begin() + ptrdiff_t(i), tokens.end(), image_token_id);
    text(size_t(it - tokens.begin()));
    if (i == tokens.size()) break;
    if (image >= grids.size())
      fail("the prompt has more images (runs of image token {}) than the request's {} image(s)",
           image_token_id, grids.size());
    const auto& g = grids[image++];
    const int32_t lh = g[1] / spatial_merge_size, lw = g[2] / spatial_merge_size;
    const size_t len = size_t(g[0]) * size_t(lh) * size_t(lw);
    if (i + len > tokens.size() ||
        std::any_of(tokens.begin() + ptrdiff_t(i), tokens.begin() + ptrdiff_t(i + len),
                    [&](int32_t t) { return t != image_token_id; }) ||
        (i + len < tokens.size() && tokens[i + len] == image_token_id))
      fail("image {}: expected a run of {} image tokens for its grid {}x{}x{}", image - 1, len,
           g[0], g[1], g[2]);
    const int32_t start = next;
    int32_t top = start;
    for (int32_t t = 0; t < g[0]; ++t)
      for (int32_t y = 0; y < lh; ++y)
        for (int32_t x = 0; x < lw; ++x) {
          out.ids[0].push_back(start);  // t_index * second_per_grid_t (0 for images)
          out.ids[1].push_back(start + y);
          out.ids[2].push_back(start + x);
          top = std::max({top, start + y, start + x});
        }
    i += len;
    next = top + 1;
  }
  if (image != grids.size())
    fail("the prompt has {} image(s) (runs of image token {}) but the request has {}", image,
         image_token_id, grids.size());
  out.rope_delta = next - int32_t(tokens.size());
  return out;
}

}  // namespace inferd
