// The identity of a preprocessed image: SHA-256 over its shape, grid and pixel values (issue 34).
// Image embeddings are cached under it (a tower's output depends on nothing else), and it is what
// the prefix cache folds into the hashes of the blocks holding the image's placeholder tokens
// (the same placeholder ids stand for every image).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "media/image_processor.h"

namespace inferd::media {

using ImageHash = std::array<uint8_t, 32>;

ImageHash image_hash(const PixelValues& pv);
std::string to_hex(const ImageHash& h);

}  // namespace inferd::media
