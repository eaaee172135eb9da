// Qwen2-VL / Qwen2.5-VL multimodal rope positions (transformers' get_rope_index, images only):
// three position ids a token (temporal, height, width). Text tokens take the same value in all
// three, one more than the largest position before them; the tokens of an image (a run of
// image_token_id of length t * (h / merge) * (w / merge)) take (start + t_index,
// start + row, start + column) of its merged grid, where start follows the text before it
// (t_index is 0: Qwen2.5-VL multiplies it by second_per_grid_t, 0 for images). rope_delta = the
// largest position + 1 - the number of tokens: a generated token at sequence index i has all three
// positions i + rope_delta.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace inferd {

struct MropePositions {
  std::array<std::vector<int32_t>, 3> ids;  // [3][T]: temporal, height, width
  int32_t rope_delta = 0;
};

// `grids` are the images' grid_thw in patches, in prompt order. Error when the image token runs
// and the grids do not match (count or length).
MropePositions mrope_positions(std::span<const int32_t> tokens, int32_t image_token_id,
                               std::span<const std::array<int32_t, 3>> grids,
                               int32_t spatial_merge_size);

}  // namespace inferd
