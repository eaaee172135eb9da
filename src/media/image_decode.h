// Image files to RGB: JPEG (libjpeg-turbo), PNG (libpng) and WebP (libwebp), as PIL opens them and
// converts them to "RGB" (what transformers' image processors start from): grey replicated,
// palettes expanded, alpha dropped without compositing, 16-bit samples cut to their high byte,
// JPEG decoded with libjpeg's default (islow) IDCT and fancy upsampling.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "media/image.h"

namespace inferd::media {

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kGif, kBmp, kTiff };

// The format the first bytes announce (magic numbers), kUnknown for anything else.
ImageFormat sniff_format(std::span<const uint8_t> bytes);
const char* format_name(ImageFormat f);

struct DecodeLimits {
  int64_t max_pixels = 50'000'000;  // width * height (--max-image-pixels)
};

// Decodes `bytes`; `what` names the image in errors ("messages[1].content[0]"). Throws Error for
// an unsupported format, a corrupt or truncated file, or more than limits.max_pixels pixels (the
// header is checked before any pixel is decoded).
Image decode_image(std::span<const uint8_t> bytes, const std::string& what,
                   const DecodeLimits& limits = {});

}  // namespace inferd::media
