// A decoded image as the vision preprocessors take it: 8-bit RGB, rows top to bottom, pixels
// interleaved (R, G, B) — what PIL's Image.convert("RGB") holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace inferd::media {

struct Image {
  int32_t width = 0;
  int32_t height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3]

  int64_t pixels() const { return int64_t(width) * height; }
  const uint8_t* row(int32_t y) const { return rgb.data() + size_t(y) * size_t(width) * 3; }
};

}  // namespace inferd::media
