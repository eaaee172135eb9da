// Granite 3.x (GraniteForCausalLM): the Llama decoder with four multipliers — the embeddings
// times embedding_multiplier, each attention and MLP output times residual_multiplier before its
// residual add, attention scores scaled by attention_multiplier (instead of 1 / sqrt(head_dim)),
// and the logits divided by logits_scaling. GraniteConfig's defaults: every multiplier 1,
// max_position_embeddings 2048.
#include <cmath>

#include "model/config_parsing.h"
#include "model/models/llama.h"
#include "model/models/models.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class GraniteArchitecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"GraniteForCausalLM"}; }
  ConfigDefaults defaults(const std::string& architecture) const override {
    (void)architecture;
    ConfigDefaults d;
    d.max_position_embeddings = 2048;
    return d;
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(
        j, src,
        {"embedding_multiplier", "logits_scaling", "residual_multiplier", "attention_multiplier"});
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
    c.embedding_multiplier = positive(j, "embedding_multiplier", src);
    c.residual_multiplier = positive(j, "residual_multiplier", src);
    c.attention_scale = positive(j, "attention_multiplier", src);
    c.logits_scaling = positive(j, "logits_scaling", src);
    parse_no_sliding_window(j, src, c);
    parse_single_rope(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<LlamaModel>(c, loader);
  }

 private:
  static double positive(const json& j, const char* key, const std::string& src) {
    const double v = get_num(j, key, src, 1.0);
    if (!(v > 0) || !std::isfinite(v))
      fail("{}: {} must be a positive number, got {}", src, key, v);
    return v;
  }
};

}  // namespace

const Architecture& granite_architecture() {
  static const GraniteArchitecture kArch;
  return kArch;
}

}  // namespace inferd
