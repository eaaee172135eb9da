// Rotary position embeddings as a config describes them: the rope types transformers implements
// (default, linear, dynamic, llama3, yarn, longrope), their parameters, and the inverse
// frequencies each gives (computed as transformers computes them, in fp32).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace inferd {

enum class RopeType : uint8_t { kDefault, kLinear, kDynamic, kLlama3, kYarn, kLongrope };
const char* rope_type_name(RopeType t);

// One set of rotary-embedding parameters (transformers' `rope_parameters` dict, or one entry of
// it per layer type). Fields that a type does not use keep their defaults.
struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                        // linear, dynamic, llama3, yarn, longrope
  double low_freq_factor = 1.0;               // llama3
  double high_freq_factor = 4.0;              // llama3
  int64_t original_max_position = 0;          // llama3, yarn, longrope (0: max_position_embeddings)
  double attention_factor = -1.0;             // yarn, longrope: cos/sin scale; < 0: derived
  double beta_fast = 32.0, beta_slow = 1.0;   // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;  // yarn (0: not set)
  bool truncate = true;                       // yarn
  std::vector<double> short_factor, long_factor;  // longrope, head_dim / 2 each
  // default: inv_freq[i] / freq_factors[i] (llama.cpp's rope_freqs tensor of GGUF files), or empty
  std::vector<double> freq_factors;
  // M-RoPE (Qwen2-VL, Qwen2.5-VL: rope_scaling.mrope_section): frequencies per position row
  // (temporal, height, width); all zero: one position a row.
  std::array<int32_t, 3> mrope_section{};
};

// The inverse frequencies [head_dim / 2] (fp32, computed as transformers computes them) and the
// factor applied to cos and sin (yarn, longrope; 1 otherwise). Types that transformers makes
// depend on the sequence length (dynamic, longrope) are fixed for the server's longest
// sequence: `max_model_len` up to max_position_embeddings (dynamic) or the original length
// (longrope) gives exactly transformers' frequencies for every sequence that fits; beyond it, the
// frequencies transformers uses for a sequence of max_model_len tokens (as vLLM does).
struct RopeFrequencies {
  std::vector<float> inv_freq;
  float attention_scaling = 1.0f;
};
RopeFrequencies rope_frequencies(const RopeConfig& r, int64_t head_dim,
                                 int64_t max_position_embeddings, int64_t max_model_len);

}  // namespace inferd
