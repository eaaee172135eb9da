// The model registry: one Architecture per family (models/*.cc), found by config.json's
// `architectures` name. An Architecture says which names it serves, transformers' defaults for the
// keys its config class fills in, how it reads its own keys, and how it builds its model from the
// shared layers. The supported list is the registry (registry.cc has one line a family).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"

namespace inferd {

class CausalLM;
class ModelLoader;

// transformers' defaults of an architecture's config class for keys a config.json may leave out.
struct ConfigDefaults {
  int64_t head_dim = 0;  // 0: hidden_size / num_attention_heads
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
};

class Architecture {
 public:
  virtual ~Architecture() = default;
  // The `architectures` names this family serves (e.g. LlamaForCausalLM, MistralForCausalLM).
  virtual std::vector<std::string> names() const = 0;
  virtual ConfigDefaults defaults(const std::string& architecture) const {
    (void)architecture;
    return {};
  }
  // The config the text model is read from: `j` itself, or for a vision-language model its
  // text_config completed with the text config's defaults and the top-level keys that apply to
  // the text model (dtype, special token ids). Throws Error naming a bad or missing key.
  virtual nlohmann::json text_config(const nlohmann::json& j, const std::string& src) const;
  // After the common keys (sizes, heads, head_dim, positions, eps, tied embeddings): the family's
  // activation, the keys that change the math (config::reject_unhandled_keys with the ones it
  // reads), biases and norms, sliding windows and rope. Throws Error naming a bad or unsupported
  // key.
  virtual void parse_config(const nlohmann::json& j, const std::string& src,
                            ModelConfig& c) const = 0;
  // The model with its weights, built from the shared layers (model/layers) through `loader`.
  virtual std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const = 0;
};

// The family serving `architecture`, or null.
const Architecture* find_architecture(const std::string& architecture);
// Every supported architecture name, comma-separated, in registry order.
std::string supported_architectures();

}  // namespace inferd
