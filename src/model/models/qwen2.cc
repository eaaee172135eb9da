// Qwen2 / Qwen2.5 (Qwen2ForCausalLM): the Llama decoder with biases on q, k and v (never on o)
// and Qwen's sliding windows (use_sliding_window, max_window_layers).
#include "model/config_parsing.h"
#include "model/models/llama.h"
#include "model/models/models.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Qwen2Architecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"Qwen2ForCausalLM"}; }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    c.qkv_bias = true;
    parse_qwen_windows(j, src, c);
    parse_single_rope(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<LlamaModel>(c, loader);
  }
};

}  // namespace

const Architecture& qwen2_architecture() {
  static const Qwen2Architecture kArch;
  return kArch;
}

}  // namespace inferd
