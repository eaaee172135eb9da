// Image preprocessing exactly as each model's Hugging Face image processor (the PIL-based "slow"
// ones): resize with PIL's filter, rescale by 1/255, normalise by mean/std, and the model's layout.
//   Gemma 3 (Gemma3ImageProcessor, SigLIP's): one size x size image (896), bilinear, mean/std 0.5,
//     pixel values [3, size, size]; pan-and-scan is refused (do_pan_and_scan).
//   Qwen2-VL / Qwen2.5-VL (Qwen2VLImageProcessor): smart_resize to multiples of patch_size *
//     merge_size within [min_pixels, max_pixels], bicubic, CLIP's mean/std, the frame repeated
//     temporal_patch_size times, flattened into patches [grid_t * grid_h * grid_w,
//     3 * temporal_patch_size * patch_size^2] in merge-window order (see qwen2_vl_patches).
// The settings come from the model directory's preprocessor_config.json.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "media/image.h"
#include "media/resample.h"

namespace inferd::media {

// One image, ready for a vision tower.
struct PixelValues {
  std::vector<float> data;
  std::vector<int64_t> shape;  // Gemma 3: {3, H, W}; Qwen2-VL: {patches, patch_dim}
  // Qwen2-VL's image_grid_thw (in patches; 1 x H/14 x W/14); Gemma 3: 1 x 1 x 1.
  std::array<int32_t, 3> grid_thw{1, 1, 1};
};

class ImageProcessor {
 public:
  virtual ~ImageProcessor() = default;
  virtual const char* name() const = 0;  // the HF class it reproduces
  virtual PixelValues preprocess(const Image& img) const = 0;
};

struct SiglipProcessorConfig {
  int32_t height = 896, width = 896;
  ResampleFilter resample = ResampleFilter::kBilinear;
  bool do_resize = true, do_rescale = true, do_normalize = true;
  double rescale_factor = 1.0 / 255;
  std::array<float, 3> mean{0.5f, 0.5f, 0.5f}, std{0.5f, 0.5f, 0.5f};
};

struct Qwen2VlProcessorConfig {
  int64_t min_pixels = 56 * 56, max_pixels = 28 * 28 * 1280;
  int32_t patch_size = 14, temporal_patch_size = 2, merge_size = 2;
  ResampleFilter resample = ResampleFilter::kBicubic;
  bool do_resize = true, do_rescale = true, do_normalize = true;
  double rescale_factor = 1.0 / 255;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

std::unique_ptr<ImageProcessor> make_siglip_processor(const SiglipProcessorConfig& c);
std::unique_ptr<ImageProcessor> make_qwen2_vl_processor(const Qwen2VlProcessorConfig& c);

// The processor a preprocessor_config.json describes (`src` names the file in errors); Error
// for an unknown image_processor_type or a setting that would change the result and is not
// implemented (do_pan_and_scan, do_convert_rgb false, an unknown resample).
std::unique_ptr<ImageProcessor> image_processor_from_json(const nlohmann::json& j,
                                                          const std::string& src);
// The same from <model_dir>/preprocessor_config.json.
std::unique_ptr<ImageProcessor> load_image_processor(const std::string& model_dir);

// Qwen2-VL's smart_resize: (height, width) rounded to multiples of `factor` (Python's round,
// ties to even) and scaled into [min_pixels, max_pixels]. Error when the aspect ratio is over 200.
std::pair<int32_t, int32_t> smart_resize(int32_t height, int32_t width, int32_t factor,
                                         int64_t min_pixels, int64_t max_pixels);

}  // namespace inferd::media
