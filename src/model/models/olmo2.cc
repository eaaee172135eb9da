// OLMo 2 (Olmo2ForCausalLM): post-norm layers — attention reads the residual stream itself and
// its output is normed (post_attention_layernorm) before the residual add, likewise the MLP's
// (post_feedforward_layernorm); q and k are RMS-normed over the whole projection (all heads at
// once) before RoPE. Olmo2Config's defaults: rms_norm_eps 1e-5, max_position_embeddings 2048.
#include "model/config_parsing.h"
#include "model/layers/attention.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "model/loader/model_loader.h"
#include "model/models/decoder_base.h"
#include "model/models/models.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Olmo2Model final : public DecoderBase {
 public:
  Olmo2Model(const ModelConfig& c, ModelLoader& loader) : DecoderBase(c, loader) {
    layers_.resize(size_t(c.num_layers));
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = layer_prefix(i);
      Layer& L = layers_[size_t(i)];
      L.post_attn_norm =
          RmsNorm(loader, p + "post_attention_layernorm.weight", c.hidden_size, c.rms_norm_eps);
      L.post_ff_norm =
          RmsNorm(loader, p + "post_feedforward_layernorm.weight", c.hidden_size, c.rms_norm_eps);
      AttentionSpec s = attention_spec(i);
      s.qk_norm = AttentionSpec::QkNorm::kWholeProjection;
      L.attn = std::make_unique<Attention>(s, loader);
      L.mlp = std::make_unique<GatedMlp>(p + "mlp.", c.hidden_size, c.intermediate_size,
                                         Activation::kSilu, false, loader);
    }
  }

  void forward(const ForwardContext& ctx, Tensor h) override {
    KernelOps& ops = ctx.ops;
    const DeviceBatch& b = ctx.batch;
    Tensor x = ctx.buffer(kX), residual = ctx.buffer(kResidual), qkv = ctx.buffer(kQkv);
    Tensor attn = ctx.buffer(kAttn), gate_up = ctx.buffer(kGateUp), act = ctx.buffer(kAct);
    embed_.forward(ops, b, residual);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& L = layers_[i];
      L.attn->forward(ops, b, residual, qkv, attn, ctx.kv_cache[i], x);
      ops.rms_norm_add(x, L.post_attn_norm.weight, L.post_attn_norm.eps, residual);
      L.mlp->forward(ops, residual, gate_up, act, x);
      ops.rms_norm_add(x, L.post_ff_norm.weight, L.post_ff_norm.eps, residual);
    }
    ops.rms_norm(residual, final_norm_.weight, final_norm_.eps, h);
  }

 private:
  struct Layer {
    RmsNorm post_attn_norm, post_ff_norm;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<GatedMlp> mlp;
  };
  std::vector<Layer> layers_;
};

class Olmo2Architecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"Olmo2ForCausalLM"}; }
  ConfigDefaults defaults(const std::string& architecture) const override {
    (void)architecture;
    ConfigDefaults d;
    d.rms_norm_eps = 1e-5;
    d.max_position_embeddings = 2048;
    return d;
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
    parse_no_sliding_window(j, src, c);
    parse_single_rope(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<Olmo2Model>(c, loader);
  }
};

}  // namespace

const Architecture& olmo2_architecture() {
  static const Olmo2Architecture kArch;
  return kArch;
}

}  // namespace inferd
