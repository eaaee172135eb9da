// The text side of a vision model's processor (transformers' Gemma3Processor and
// Qwen2_5_VLProcessor): each image placeholder the chat template emitted is expanded into the
// tokens the image's embeddings will take, in order of the request's images.
//   Gemma 3: "<start_of_image>" -> "\n\n<start_of_image>" + mm_tokens_per_image x
//     "<image_soft_token>" + "<end_of_image>\n\n".
//   Qwen2-VL / Qwen2.5-VL: "<|image_pad|>" (between <|vision_start|> and <|vision_end|>) ->
//     grid_t * grid_h * grid_w / merge_size^2 x "<|image_pad|>".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "media/image_processor.h"

namespace inferd::media {

struct ImagePromptFormat {
  enum class Kind { kGemma3, kQwen2Vl };
  Kind kind = Kind::kGemma3;
  int64_t mm_tokens_per_image = 256;  // Gemma 3
  int32_t merge_size = 2;             // Qwen2-VL

  static ImagePromptFormat gemma3(int64_t tokens) { return {Kind::kGemma3, tokens, 2}; }
  static ImagePromptFormat qwen2_vl(int32_t merge) { return {Kind::kQwen2Vl, 256, merge}; }
  // The placeholder the chat template writes for one image.
  const char* placeholder() const;
  // The image token the embeddings replace ("<image_soft_token>", "<|image_pad|>").
  const char* image_token() const;
  // How many image tokens `pv` takes.
  int64_t tokens_for(const PixelValues& pv) const;
};

// `text` with its placeholders expanded for `images` (in order). Error naming `what` when the
// placeholders and the images differ in number.
std::string expand_image_placeholders(const std::string& text,
                                      const std::vector<PixelValues>& images,
                                      const ImagePromptFormat& f, const std::string& what);

}  // namespace inferd::media
