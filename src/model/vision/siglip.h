// The SigLIP vision tower (transformers' SiglipVisionModel, as Gemma 3 uses it) and Gemma 3's
// multimodal projector, as a plain fp32 CPU reference (issue 34): the patch embedding (a
// stride-patch convolution, computed as a GEMM over flattened patches), learned position
// embeddings, pre-LayerNorm encoder layers (bidirectional attention with biased q/k/v/out
// projections, a GELU-tanh MLP), the post LayerNorm; then the projector: average pooling of the
// patch grid to mm_tokens_per_image soft tokens, RMSNorm scaled by (1 + w), a linear map to the
// text model's width. The CUDA backend runs the same computation through KernelOps (planned).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/loader/safetensors.h"

namespace inferd {

struct SiglipVisionConfig {
  int64_t hidden_size = 1152;
  int64_t intermediate_size = 4304;
  int64_t num_layers = 27;
  int64_t num_heads = 16;
  int64_t num_channels = 3;
  int64_t image_size = 896;
  int64_t patch_size = 14;
  double layer_norm_eps = 1e-6;

  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
  // config.json's vision_config (SiglipVisionConfig's keys and defaults); `src` names it in
  // errors. Unsupported settings (another hidden_act, a pooling head) are errors.
  static SiglipVisionConfig parse(const nlohmann::json& j, const std::string& src);
};

class SiglipVisionTower {
 public:
  // Weights under `prefix` ("vision_tower.vision_model." or "model.vision_tower.vision_model.").
  SiglipVisionTower(const SiglipVisionConfig& c, const SafetensorsIndex& st,
                    const std::string& prefix);
  const SiglipVisionConfig& config() const { return c_; }
  // pixel_values [3, image_size, image_size] -> last_hidden_state [num_patches, hidden_size].
  std::vector<float> forward(const std::vector<float>& pixel_values) const;

 private:
  struct Linear {
    std::vector<float> w, b;  // w [out, in]
    int64_t in = 0, out = 0;
  };
  struct Norm {
    std::vector<float> w, b;
  };
  struct Layer {
    Norm ln1, ln2;
    Linear q, k, v, o, fc1, fc2;
  };
  Linear linear(const SafetensorsIndex& st, const std::string& name, int64_t out, int64_t in) const;
  Norm norm(const SafetensorsIndex& st, const std::string& name) const;
  void attention(const Layer& L, const std::vector<float>& x, std::vector<float>& out) const;

  SiglipVisionConfig c_;
  Linear patch_;                  // [hidden, 3 * patch * patch] (the conv's weight flattened)
  std::vector<float> positions_;  // [num_patches, hidden]
  std::vector<Layer> layers_;
  Norm post_;
};

// Gemma3MultiModalProjector: [num_patches, vision_hidden] -> [mm_tokens_per_image, text_hidden].
class Gemma3Projector {
 public:
  Gemma3Projector(const SiglipVisionConfig& vision, int64_t mm_tokens_per_image,
                  int64_t text_hidden, const SafetensorsIndex& st, const std::string& prefix);
  int64_t tokens() const { return tokens_side_ * tokens_side_; }
  std::vector<float> forward(const std::vector<float>& vision_out) const;

 private:
  SiglipVisionConfig v_;
  int64_t tokens_side_ = 0, text_hidden_ = 0;
  std::vector<float> norm_w_;  // [vision_hidden]
  std::vector<float> proj_;    // mm_input_projection_weight [vision_hidden, text_hidden]
};

}  // namespace inferd
