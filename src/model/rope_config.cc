// Rotary embedding frequencies (rope_config.h), as transformers computes them.
#include "model/rope_config.h"

#include <algorithm>
#include <cmath>

namespace inferd {

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::kDefault:
      return "default";
    case RopeType::kLinear:
      return "linear";
    case RopeType::kDynamic:
      return "dynamic";
    case RopeType::kLlama3:
      return "llama3";
    case RopeType::kYarn:
      return "yarn";
    case RopeType::kLongrope:
      return "longrope";
  }
  return "?";
}

RopeFrequencies rope_frequencies(const RopeConfig& r, int64_t head_dim,
                                 int64_t max_position_embeddings, int64_t max_model_len) {
  const int64_t half = head_dim / 2;
  RopeFrequencies out;
  std::vector<float>& inv = out.inv_freq;
  inv.resize(size_t(half));
  // transformers: base ** (arange(0, dim, 2).float() / dim), in fp32.
  auto pos_freq = [&](double base, int64_t i) {
    return std::pow(float(base), float(2 * i) / float(head_dim));
  };
  double base = r.theta;
  if (r.type == RopeType::kDynamic) {
    // transformers recomputes the base for the current length once it exceeds
    // max_position_embeddings; here for the longest sequence the server allows.
    const double len = double(std::max(max_model_len, max_position_embeddings));
    base = base * std::pow(r.factor * len / double(max_position_embeddings) - (r.factor - 1.0),
                           double(head_dim) / double(head_dim - 2));
  }
  for (int64_t i = 0; i < half; ++i) inv[size_t(i)] = 1.0f / pos_freq(base, i);

  switch (r.type) {
    case RopeType::kDefault:
      // GGUF files of Llama 3.1: llama.cpp's per-frequency divisors (rope_freqs.weight).
      if (!r.freq_factors.empty())
        for (size_t i = 0; i < inv.size(); ++i) inv[i] = inv[i] / float(r.freq_factors[i]);
      break;
    case RopeType::kDynamic:
      break;
    case RopeType::kLinear:
      for (auto& f : inv) f = f / float(r.factor);
      break;
    case RopeType::kLlama3: {
      const float factor = float(r.factor);
      const float lo = float(r.low_freq_factor), hi = float(r.high_freq_factor);
      const float old_len = float(r.original_max_position);
      const float low_wavelen = old_len / lo, high_wavelen = old_len / hi;
      constexpr float kPi = 3.14159265358979323846f;
      for (auto& f : inv) {
        const float wavelen = 2.0f * kPi / f;
        const float scaled = wavelen > low_wavelen ? f / factor : f;
        const float smooth = (old_len / wavelen - lo) / (hi - lo);
        const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
        const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        f = medium ? smoothed : scaled;
      }
      break;
    }
    case RopeType::kYarn: {
      auto get_mscale = [](double scale, double m) {
        return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
      };
      double att = r.attention_factor;
      if (att < 0) {
        att = r.mscale != 0 && r.mscale_all_dim != 0
                  ? get_mscale(r.factor, r.mscale) / get_mscale(r.factor, r.mscale_all_dim)
                  : get_mscale(r.factor, 1.0);
      }
      out.attention_scaling = float(att);
      const double dim = double(head_dim), omax = double(r.original_max_position);
      auto correction_dim = [&](double rotations) {
        return dim * std::log(omax / (rotations * 2.0 * 3.14159265358979323846)) /
               (2.0 * std::log(r.theta));
      };
      double low = correction_dim(r.beta_fast), high = correction_dim(r.beta_slow);
      if (r.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1);
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        const float pf = pos_freq(r.theta, i);
        const float extrapolation = 1.0f / pf;
        const float interpolation = 1.0f / (float(r.factor) * pf);
        const float ramp =
            std::clamp((float(i) - float(low)) / (float(high) - float(low)), 0.0f, 1.0f);
        const float extra_factor = 1.0f - ramp;
        inv[size_t(i)] = interpolation * (1.0f - extra_factor) + extrapolation * extra_factor;
      }
      break;
    }
    case RopeType::kLongrope: {
      double att = r.attention_factor;
      if (att < 0) {
        att = r.factor <= 1.0
                  ? 1.0
                  : std::sqrt(1.0 + std::log(r.factor) / std::log(double(r.original_max_position)));
      }
      out.attention_scaling = float(att);
      const bool use_long = max_model_len > r.original_max_position;
      const std::vector<double>& ext = use_long ? r.long_factor : r.short_factor;
      for (int64_t i = 0; i < half; ++i)
        inv[size_t(i)] = 1.0f / (float(ext[size_t(i)]) * pos_freq(r.theta, i));
      break;
    }
  }
  return out;
}

}  // namespace inferd
