// gpt-oss (GptOssForCausalLM; transformers' modeling_gpt_oss.py): a pre-norm decoder whose
// attention has q/k/v/o biases and a learned sink logit per head in the softmax, alternating
// sliding-window (128) and full layers, YaRN rope; and whose every MLP is a mixture of experts: a
// router with bias, the top k logits then a softmax over them, experts stored fused as 3-D tensors
// (gate_up_proj [E, hidden, 2 * inter] with gate and up interleaved, down_proj [E, inter, hidden],
// each with a bias), the clamped SwiGLU (gate <= limit, |up| <= limit, (up + 1) * gate *
// sigmoid(alpha * gate)). Experts in bf16 or MXFP4 (quant/mxfp4.cc), as the published checkpoints
// ship them, through the shared MoE layer (layers/moe.h: KernelOps::moe_topk / moe_experts).
#include <algorithm>

#include "core/error.h"
#include "model/config_parsing.h"
#include "model/layers/attention.h"
#include "model/layers/moe.h"
#include "model/layers/norm.h"
#include "model/loader/model_loader.h"
#include "model/models/decoder_base.h"
#include "model/models/models.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

// The gpt-oss MLP as the shared MoE layer: the router with bias, the top k logits then a softmax
// over them, the stacked experts (input-major, gate/up interleaved, biases) with the clamped
// SwiGLU.
MoeSpec gpt_oss_moe_spec(const std::string& prefix, const ModelConfig& c) {
  MoeSpec s;
  s.prefix = prefix;
  s.router_name = "router";
  s.hidden = c.hidden_size;
  s.expert_intermediate = c.intermediate_size;
  s.num_experts = c.num_experts;
  s.top_k = c.num_experts_per_tok;
  s.softmax_before_topk = false;
  s.renormalize = false;  // moot: the softmax is over the k chosen logits
  s.router_bias = true;
  s.expert_bias = true;
  s.experts_transposed = true;
  s.gate_up_interleaved = true;
  s.expert_act = MoeExperts::Act::kSwigluClamp;
  s.act_alpha = float(c.swiglu_alpha);
  s.act_limit = float(c.swiglu_limit);
  return s;
}

namespace {

class GptOssModel final : public DecoderBase {
 public:
  GptOssModel(const ModelConfig& c, ModelLoader& loader) : DecoderBase(c, loader) {
    layers_.resize(size_t(c.num_layers));
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = layer_prefix(i);
      Layer& L = layers_[size_t(i)];
      L.input_norm = RmsNorm(loader, p + "input_layernorm.weight", c.hidden_size, c.rms_norm_eps);
      L.post_norm =
          RmsNorm(loader, p + "post_attention_layernorm.weight", c.hidden_size, c.rms_norm_eps);
      AttentionSpec spec = attention_spec(i);
      spec.sinks = true;
      L.attn = std::make_unique<Attention>(spec, loader);
      L.mlp = make_moe_layer(gpt_oss_moe_spec(p + "mlp.", c), loader);
    }
  }

  std::vector<int64_t> workspace_columns() const override {
    std::vector<int64_t> cols = DecoderBase::workspace_columns();
    int64_t moe = 1;
    for (const Layer& L : layers_) moe = std::max(moe, L.mlp->workspace_columns());
    cols.push_back(moe);  // kMoeScratch
    return cols;
  }

  int64_t num_moe_layers() const override { return int64_t(layers_.size()); }

  void set_expert_counts(const Tensor& counts) override {
    for (size_t i = 0; i < layers_.size(); ++i)
      layers_[i].mlp->set_expert_counts(
          counts.defined() ? counts.slice_rows(int64_t(i), int64_t(i) + 1) : Tensor());
  }

  void forward(const ForwardContext& ctx, Tensor h) override {
    KernelOps& ops = ctx.ops;
    const DeviceBatch& b = ctx.batch;
    Tensor x = ctx.buffer(kX), residual = ctx.buffer(kResidual), qkv = ctx.buffer(kQkv);
    Tensor attn = ctx.buffer(kAttn), scratch = ctx.buffer(kMoeScratch);
    embed_.forward(ops, b, residual);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& L = layers_[i];
      if (i == 0) {
        ops.rms_norm(residual, L.input_norm.weight, L.input_norm.eps, h);
      } else {
        ops.add_rms_norm(residual, x, L.input_norm.weight, L.input_norm.eps, h);
      }
      L.attn->forward(ops, b, h, qkv, attn, ctx.kv_cache[i], x);
      ops.add_rms_norm(residual, x, L.post_norm.weight, L.post_norm.eps, h);
      L.mlp->forward(ops, h, scratch, x);
    }
    ops.add_rms_norm(residual, x, final_norm_.weight, final_norm_.eps, h);
  }

 private:
  static constexpr size_t kMoeScratch = kAct + 1;
  struct Layer {
    RmsNorm input_norm, post_norm;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<MoeLayer> mlp;
  };
  std::vector<Layer> layers_;
};

class GptOssArchitecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"GptOssForCausalLM"}; }
  // GptOssConfig: head_dim 64, max_position_embeddings 131072, rms_norm_eps 1e-5.
  ConfigDefaults defaults(const std::string& architecture) const override {
    (void)architecture;
    ConfigDefaults d;
    d.head_dim = 64;
    d.max_position_embeddings = 131072;
    d.rms_norm_eps = 1e-5;
    return d;
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src, {"num_local_experts", "num_experts"});
    if (is_set(j, "num_local_experts") && is_set(j, "num_experts") &&
        !same_value(j["num_local_experts"], j["num_experts"]))
      fail("{}: num_local_experts and num_experts disagree", src);
    c.num_experts = is_set(j, "num_local_experts") ? get_int(j, "num_local_experts", src)
                                                   : get_int(j, "num_experts", src, 128);
    c.num_experts_per_tok = get_int(j, "num_experts_per_tok", src, 4);
    if (c.num_experts <= 0 || c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts)
      fail("{}: num_experts_per_tok ({}) must be in [1, num_local_experts ({})]", src,
           c.num_experts_per_tok, c.num_experts);
    // Every layer's MLP is the expert block, experts of intermediate_size.
    c.moe_intermediate_size = c.intermediate_size;
    c.layer_sparse.assign(size_t(c.num_layers), 1);
    c.swiglu_alpha = get_num(j, "swiglu_alpha", src, 1.702);
    c.swiglu_limit = get_num(j, "swiglu_limit", src, 7.0);
    if (!(c.swiglu_limit > 0)) fail("{}: swiglu_limit must be positive", src);
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, true);
    c.attention_sinks = true;
    parse_windows(j, src, c);
    parse_gpt_oss_rope(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<GptOssModel>(c, loader);
  }

 private:
  // GptOssConfig: without layer_types, even layers slide and odd ones attend fully;
  // sliding_window defaults to 128.
  static void parse_windows(const json& j, const std::string& src, ModelConfig& c) {
    std::vector<std::string> types = layer_types(j, src, c);
    if (types.empty()) {
      for (int64_t i = 0; i < c.num_layers; ++i)
        types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
    }
    c.layer_sliding.assign(size_t(c.num_layers), 0);
    for (size_t i = 0; i < types.size(); ++i) c.layer_sliding[i] = types[i] == "sliding_attention";
    c.sliding_window = j.contains("sliding_window") && !j["sliding_window"].is_null()
                           ? get_int(j, "sliding_window", src, 0)
                           : (j.contains("sliding_window") ? 0 : 128);
    if (c.sliding_window <= 0 && any_sliding(types))
      fail("{}: sliding_window must be a positive integer for the sliding_attention layers", src);
  }
  // One rope for every layer; GptOssConfig's default (neither rope_parameters nor rope_scaling)
  // is YaRN with factor 32 over 4096 original positions, beta_fast 32, beta_slow 1, truncate
  // false, rope_theta 150000.
  static void parse_gpt_oss_rope(const json& j, const std::string& src, ModelConfig& c) {
    json k = j;
    if (!is_set(j, "rope_parameters") && !is_set(j, "rope_scaling")) {
      k["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 32.0},
                           {"beta_fast", 32.0},   {"beta_slow", 1.0},
                           {"truncate", false},   {"original_max_position_embeddings", 4096}};
    }
    const json* rp = rope_parameters(k);
    if (!k.contains("rope_theta") && (rp == nullptr || !rp->contains("rope_theta")))
      k["rope_theta"] = 150000.0;
    parse_single_rope(k, src, c);
  }
};

}  // namespace

const Architecture& gpt_oss_architecture() {
  static const GptOssArchitecture kArch;
  return kArch;
}

}  // namespace inferd
