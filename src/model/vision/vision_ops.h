// Row-wise fp32 helpers the CPU reference vision towers share (model/vision): a linear layer,
// LayerNorm, RMSNorm and the GELU / SiLU activations, written for clarity (one thread).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "model/loader/safetensors.h"

namespace inferd {

// A weight as fp32 (from F32, BF16 or F16; any rank, flattened row-major), its shape checked;
// Error naming it otherwise.
std::vector<float> load_vision_weight(const SafetensorsIndex& st, const std::string& name,
                                      std::initializer_list<int64_t> shape);

// y [t, out] = x [t, in] W^T (+ b), W [out, in]; b may be null.
void vision_linear(const float* x, int64_t t, int64_t in, const float* w, const float* b,
                   int64_t out, float* y);
// y = (x - mean) / sqrt(var + eps) * w + b, each row of n.
void vision_layer_norm(const float* x, int64_t t, int64_t n, const float* w, const float* b,
                       double eps, float* y);
// y = x / sqrt(mean(x^2) + eps) * w, each row of n.
void vision_rms_norm(const float* x, int64_t t, int64_t n, const float* w, double eps, float* y);
void vision_gelu_tanh(float* x, int64_t n);  // PyTorch's gelu(approximate="tanh")
void vision_gelu_erf(float* x, int64_t n);   // PyTorch's gelu (exact)
void vision_silu(float* x, int64_t n);

}  // namespace inferd
