// Qwen2.5-VL's vision tower (transformers' Qwen2_5_VisionTransformerPretrainedModel) as a plain
// fp32 CPU reference (issue 34): the patch embedding (a bias-free Conv3d over 2 x 14 x 14 patches,
// a GEMM over the processor's flattened rows), a 2-D rotary embedding (half the rotary dims from
// each patch's row, half from its column), blocks of RMSNorm + attention + RMSNorm + SiLU-gated
// MLP where attention stays within windows of window_size pixels except in the
// fullatt_block_indexes blocks, and the patch merger (RMSNorm, 2 x 2 patches concatenated, a
// two-layer MLP with exact GELU) to out_hidden_size: one embedding a merged token, in the
// processor's row order. The CUDA backend runs the same through KernelOps (planned).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/loader/safetensors.h"

namespace inferd {

struct Qwen25VlVisionConfig {
  int64_t depth = 32;
  int64_t hidden_size = 1280;
  int64_t intermediate_size = 3420;
  int64_t num_heads = 16;
  int64_t out_hidden_size = 3584;
  int64_t patch_size = 14;
  int64_t spatial_merge_size = 2;
  int64_t temporal_patch_size = 2;
  int64_t window_size = 112;
  std::vector<int64_t> fullatt_block_indexes{7, 15, 23, 31};

  // config.json's vision_config (Qwen2_5_VLVisionConfig's keys and defaults); `src` names it.
  static Qwen25VlVisionConfig parse(const nlohmann::json& j, const std::string& src);
};

class Qwen25VlVisionTower {
 public:
  // Weights under `prefix` ("visual." or "model.visual.").
  Qwen25VlVisionTower(const Qwen25VlVisionConfig& c, const SafetensorsIndex& st,
                      const std::string& prefix);
  // pixel_values [grid_t * grid_h * grid_w, 3 * temporal * patch^2] (the image processor's rows)
  // -> [grid_t * grid_h * grid_w / merge^2, out_hidden_size].
  std::vector<float> forward(const std::vector<float>& pixel_values,
                             const std::array<int32_t, 3>& grid_thw) const;

 private:
  struct Linear {
    std::vector<float> w, b;  // w [out, in]; b empty: no bias
    int64_t in = 0, out = 0;
  };
  struct Block {
    std::vector<float> norm1, norm2;
    Linear qkv, proj, gate, up, down;
  };
  Linear linear(const SafetensorsIndex& st, const std::string& name, int64_t out, int64_t in,
                bool bias) const;
  void apply(const Linear& l, const float* x, int64_t t, float* y) const;

  Qwen25VlVisionConfig c_;
  Linear patch_;
  std::vector<Block> blocks_;
  std::vector<float> merger_norm_;
  Linear merger_fc1_, merger_fc2_;
};

}  // namespace inferd
