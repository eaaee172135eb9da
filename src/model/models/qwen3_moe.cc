// Qwen3-MoE (Qwen3MoeForCausalLM: Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention (per-head
// q/k norms, optional biases, Qwen's sliding windows) with a mixture-of-experts block in every
// decoder_sparse_step-th layer not listed in mlp_only_layers: num_experts experts of
// moe_intermediate_size, num_experts_per_tok chosen by softmax over all router logits then top-k,
// renormalised when norm_topk_prob (transformers' Qwen3MoeConfig defaults below).
#include "model/config_parsing.h"
#include "model/models/models.h"
#include "model/models/moe_decoder.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Qwen3MoeArchitecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"Qwen3MoeForCausalLM"}; }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src, {"num_experts"});
    c.qk_norm = true;
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
    parse_qwen_windows(j, src, c);
    parse_single_rope(j, src, c);
    c.num_experts = get_int(j, "num_experts", src, 128);
    c.num_experts_per_tok = get_int(j, "num_experts_per_tok", src, 8);
    c.moe_intermediate_size = get_int(j, "moe_intermediate_size", src, 768);
    c.norm_topk_prob = get_bool(j, "norm_topk_prob", src, false);
    const int64_t step = get_int(j, "decoder_sparse_step", src, 1);
    if (step <= 0) fail("{}: decoder_sparse_step must be positive, got {}", src, step);
    if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts ||
        c.moe_intermediate_size <= 0)
      fail(
          "{}: num_experts_per_tok {} of num_experts {} (moe_intermediate_size {}): expected "
          "0 < num_experts_per_tok <= num_experts and a positive size",
          src, c.num_experts_per_tok, c.num_experts, c.moe_intermediate_size);
    c.layer_sparse.assign(size_t(c.num_layers), 0);
    for (int64_t i = 0; i < c.num_layers; ++i)
      c.layer_sparse[size_t(i)] = c.num_experts > 0 && (i + 1) % step == 0;
    if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) fail("{}: mlp_only_layers must be a list of layer indices", src);
      for (const auto& v : *it) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.num_layers)
          fail("{}: mlp_only_layers entry {}: expected a layer index below {}", src, v.dump(),
               c.num_layers);
        c.layer_sparse[size_t(v.get<int64_t>())] = 0;
      }
    }
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<MoeDecoderModel>(c, MoeNames{}, loader);
  }
};

}  // namespace

const Architecture& qwen3_moe_architecture() {
  static const Qwen3MoeArchitecture kArch;
  return kArch;
}

}  // namespace inferd
