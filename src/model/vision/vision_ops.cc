// Row-wise fp32 helpers of the CPU reference vision towers (see vision_ops.h).
#include "model/vision/vision_ops.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace inferd {

std::vector<float> load_vision_weight(const SafetensorsIndex& st, const std::string& name,
                                      std::initializer_list<int64_t> shape) {
  const Tensor t = st.get_float_2d(name, std::span<const int64_t>(shape.begin(), shape.size()));
  const int64_t n = t.numel();
  std::vector<float> out(static_cast<size_t>(n));
  if (t.dtype() == DType::kF32) {
    std::copy_n(t.data_as<const float>(), n, out.data());
  } else if (t.dtype() == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = bf16_to_f32(t.data_as<const uint16_t>()[i]);
  } else if (t.dtype() == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = f16_to_f32(t.data_as<const uint16_t>()[i]);
  } else {
    fail("{}: unsupported dtype for a vision weight", name);
  }
  return out;
}

void vision_linear(const float* x, int64_t t, int64_t in, const float* w, const float* b,
                   int64_t out, float* y) {
  for (int64_t r = 0; r < t; ++r) {
    const float* xr = x + r * in;
    float* yr = y + r * out;
    for (int64_t o = 0; o < out; ++o) {
      const float* wo = w + o * in;
      float acc = 0;
      for (int64_t i = 0; i < in; ++i) acc += xr[i] * wo[i];
      yr[o] = acc + (b ? b[o] : 0.0f);
    }
  }
}

void vision_layer_norm(const float* x, int64_t t, int64_t n, const float* w, const float* b,
                       double eps, float* y) {
  for (int64_t r = 0; r < t; ++r) {
    const float* xr = x + r * n;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += xr[i];
    mean /= double(n);
    for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1.0 / std::sqrt(var / double(n) + eps);
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = float((xr[i] - mean) * inv) * w[i] + b[i];
  }
}

void vision_rms_norm(const float* x, int64_t t, int64_t n, const float* w, double eps, float* y) {
  for (int64_t r = 0; r < t; ++r) {
    const float* xr = x + r * n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * xr[i];
    const float inv = float(1.0 / std::sqrt(ss / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = xr[i] * inv * w[i];
  }
}

void vision_gelu_tanh(float* x, int64_t n) {
  constexpr float k = 0.7978845608028654f;  // sqrt(2 / pi)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void vision_gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678f));
}

void vision_silu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

}  // namespace inferd
