// RMSNorm weights (HF RMSNorm: x * rsqrt(mean(x^2) + eps) in fp32, then * weight), placed fp32 for
// the backend's norm kernels (KernelOps::rms_norm, add_rms_norm, rms_norm_add, head_rms_norm).
// Gemma's norms scale by (1 + w): folded into the weight at load.
#pragma once

#include <string>

#include "core/tensor.h"

namespace inferd {

class ModelLoader;

struct RmsNorm {
  Tensor weight;  // fp32 [dim] on the device
  float eps = 1e-6f;

  RmsNorm() = default;
  RmsNorm(ModelLoader& loader, const std::string& name, int64_t dim, double eps,
          bool plus_one = false);
};

}  // namespace inferd
