// Qwen3 (Qwen3ForCausalLM): the Llama decoder with an RMSNorm on each query and key head before
// RoPE, optional attention biases and Qwen's sliding windows.
#include "model/config_parsing.h"
#include "model/models/llama.h"
#include "model/models/models.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Qwen3Architecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"Qwen3ForCausalLM"}; }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    c.qk_norm = true;
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
    parse_qwen_windows(j, src, c);
    parse_single_rope(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<LlamaModel>(c, loader);
  }
};

}  // namespace

const Architecture& qwen3_architecture() {
  static const Qwen3Architecture kArch;
  return kArch;
}

}  // namespace inferd
