// Phi-3 (Phi3ForCausalLM): the Llama decoder with q/k/v as one `qkv_proj` and gate/up as one
// `gate_up_proj` in the checkpoint, no biases whatever the config says, longrope (old configs name
// it "su" or "yarn"), and one optional sliding window for every layer.
#include "model/config_parsing.h"
#include "model/models/llama.h"
#include "model/models/models.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Phi3Architecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"Phi3ForCausalLM"}; }
  ConfigDefaults defaults(const std::string& architecture) const override {
    (void)architecture;
    ConfigDefaults d;
    d.rms_norm_eps = 1e-5;  // Phi3Config
    return d;
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    // Phi3Attention and Phi3MLP have no biases whatever the config says.
    c.fused_qkv_gate_up = true;
    // sliding_window (default none) applies to every layer; layer_types is not read.
    if (any_sliding(layer_types(j, src, c)))
      fail("{}: layer_types marks sliding_attention layers, which {} does not have", src,
           c.architecture);
    parse_window_on_every_layer(j, src, c, 0);
    parse_rope_of_phi3(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<LlamaModel>(c, loader);
  }

 private:
  static void parse_rope_of_phi3(const json& j, const std::string& src, ModelConfig& c) {
    const json* rp = rope_parameters(j);
    if (rope_per_layer_type(rp))
      fail("{}: rope_parameters per layer type is not supported for {}", src, c.architecture);
    json rope = merged_rope_dict(j, rp, src, rp ? "rope_parameters" : "rope_scaling");
    // Phi3Config: older configs name longrope "su" (or "yarn").
    if (rope.contains("rope_type") && (rope["rope_type"] == "su" || rope["rope_type"] == "yarn"))
      rope["rope_type"] = "longrope";
    // Phi3Config's original_max_position_embeddings (default 4096) always replaces the rope
    // dict's.
    json top = j;
    if (!is_set(top, "original_max_position_embeddings"))
      top["original_max_position_embeddings"] = 4096;
    c.rope = parse_rope(rope, c, top, 10000.0, src, rp ? "rope_parameters" : "rope_scaling");
  }
};

}  // namespace

const Architecture& phi3_architecture() {
  static const Phi3Architecture kArch;
  return kArch;
}

}  // namespace inferd
