// Image resizing with PIL's semantics (Pillow's Image.resize on an "RGB" image, no box, no
// reducing_gap): a separable convolution, the horizontal pass first, each output pixel's filter
// centred at (i + 0.5) * scale and widened by the scale when downscaling (antialiasing), weights
// normalised to sum 1, then rounded to 22-bit fixed point; each pass rounds and clips to 8 bits.
// transformers' PIL-based image processors resize this way, so the pixels match theirs exactly.
#pragma once

#include "media/image.h"

namespace inferd::media {

enum class ResampleFilter { kBilinear, kBicubic };  // PIL's BILINEAR (2) and BICUBIC (3)

// `img` resized to width x height (>= 1 each).
Image resize(const Image& img, int32_t width, int32_t height, ResampleFilter filter);

}  // namespace inferd::media
