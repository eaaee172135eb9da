// A LoRA adapter as PEFT saves it (issue 29): `adapter_config.json` (LoraConfig: r, lora_alpha,
// use_rslora, target_modules, rank_pattern, alpha_pattern, ...) and `adapter_model.safetensors`
// (`base_model.model.<module>.lora_A.weight` [r, in], `...lora_B.weight` [out, r]), as
// huggingface/peft's `save_pretrained` writes them. The adapter's change to a targeted linear is
// y += scale * (x A^T) B^T with scale = alpha / r (alpha / sqrt(r) with use_rslora), r and alpha
// per module from rank_pattern / alpha_pattern. Adapters on the seven projections of a decoder
// layer (q, k, v, o, gate, up, down) are supported; anything else an adapter asks for (embeddings,
// lm_head, DoRA, modules_to_save, biases, fan_in_fan_out, layers_to_transform, ...) is an Error
// naming the key and the file.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"

namespace inferd {

// The projections of a decoder layer an adapter may target, in the order the merged linears
// stack them (qkv: q, k, v; gate_up: gate, up).
enum class LoraModule : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLoraModules = 7;
// "q_proj", "k_proj", ... (the Hugging Face module names).
const char* lora_module_name(LoraModule m);

// adapter_config.json, the fields that change the result.
struct PeftLoraConfig {
  int32_t r = 8;
  double lora_alpha = 8;
  bool use_rslora = false;
  bool all_linear = false;                  // target_modules: "all-linear"
  std::vector<std::string> target_modules;  // names (suffixes of module names)
  std::string target_regex;                 // target_modules given as one regular expression
  std::map<std::string, int32_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  std::string base_model_name_or_path;  // informative only
};

// Parses adapter_config.json text; `src` names the file in errors.
PeftLoraConfig parse_peft_lora_config(const std::string& json_text, const std::string& src);

// The weights of one targeted module, fp32 on the host.
struct LoraModuleWeights {
  int32_t rank = 0;      // 0: the module is not targeted
  float scale = 0.0f;    // alpha / r (or alpha / sqrt(r))
  std::vector<float> a;  // [rank, in_features]
  std::vector<float> b;  // [out_features, rank]
};

struct LoraAdapter {
  std::string path;
  PeftLoraConfig config;
  int32_t max_rank = 0;  // the largest rank of any module
  std::vector<std::array<LoraModuleWeights, kNumLoraModules>> layers;  // [num_layers]
  const LoraModuleWeights& module(int64_t layer, LoraModule m) const {
    return layers[size_t(layer)][size_t(m)];
  }
  int64_t host_bytes() const;
};

// (out_features, in_features) of module m of a layer of `cfg`.
std::pair<int64_t, int64_t> lora_module_shape(const ModelConfig& cfg, LoraModule m);

// Loads `dir`/adapter_config.json and `dir`/adapter_model.safetensors for a base model of `cfg`
// (shapes checked against it). max_lora_rank > 0: a module of a larger rank is an Error naming
// both (vLLM's --max-lora-rank).
LoraAdapter load_peft_adapter(const std::string& dir, const ModelConfig& cfg,
                              int32_t max_lora_rank = 0);

// A random adapter of rank `rank` on all seven projections of every layer of `cfg` (scale 1,
// seeded; A ~ 1/sqrt(in), B small): benchmarks (`inferd bench --lora-dummy-count`).
LoraAdapter random_lora_adapter(const ModelConfig& cfg, int32_t rank, uint64_t seed);

}  // namespace inferd
