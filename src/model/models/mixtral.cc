// Mixtral (MixtralForCausalLM): the Mistral decoder (GQA, no biases, an optional sliding window on
// every layer; none unless sliding_window is set, as MixtralConfig) with a mixture-of-experts block
// in every layer: num_local_experts experts of intermediate_size, num_experts_per_tok chosen
// (softmax over all router logits, top-k, renormalised: the same as a softmax over the top-k
// logits). The published checkpoints name the block `block_sparse_moe` with experts w1 (gate),
// w3 (up), w2 (down); transformers 5 saves it as `mlp` with stacked experts (moe_decoder.cc
// follows the checkpoint).
#include "model/config_parsing.h"
#include "model/models/models.h"
#include "model/models/moe_decoder.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class MixtralArchitecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"MixtralForCausalLM"}; }
  ConfigDefaults defaults(const std::string& architecture) const override {
    (void)architecture;
    ConfigDefaults d;
    d.max_position_embeddings = 4096 * 32;
    d.rms_norm_eps = 1e-5;
    return d;
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src, {"num_local_experts"});
    parse_window_on_every_layer(j, src, c, 0);
    parse_single_rope(j, src, c);
    c.num_experts = get_int(j, "num_local_experts", src, 8);
    c.num_experts_per_tok = get_int(j, "num_experts_per_tok", src, 2);
    c.moe_intermediate_size = c.intermediate_size;
    c.norm_topk_prob = true;
    if (c.num_experts <= 0 || c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts)
      fail("{}: num_experts_per_tok {} of num_local_experts {}: expected 0 < top-k <= experts", src,
           c.num_experts_per_tok, c.num_experts);
    c.layer_sparse.assign(size_t(c.num_layers), 1);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    MoeNames n;
    n.block = "block_sparse_moe.";
    n.gate = "w1";
    n.up = "w3";
    n.down = "w2";
    return std::make_unique<MoeDecoderModel>(c, n, loader);
  }
};

}  // namespace

const Architecture& mixtral_architecture() {
  static const MixtralArchitecture kArch;
  return kArch;
}

}  // namespace inferd
