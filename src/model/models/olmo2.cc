// OLMo 2 (Olmo2ForCausalLM): post-norm layers — attention reads the residual stream itself and
// its output is normed (post_attention_layernorm) before the residual add, likewise the MLP's
// (post_feedforward_layernorm); q and k are RMS-normed over the whole projection (all heads at
// once) before RoPE. Olmo2Config's defaults: rms_norm_eps 1e-5, max_position_embeddings 2048.
#include <cmath>

#include "model/causal_lm.h"
#include "model/config_parsing.h"
#include "model/layers/attention.h"
#include "model/layers/embedding.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "model/layers/rope.h"
#include "model/loader/model_loader.h"
#include "model/models/models.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Olmo2Model final : public CausalLM {
 public:
  Olmo2Model(const ModelConfig& c, ModelLoader& loader) : CausalLM(c) {
    rope_ = make_rope_table(loader.runtime(), c.rope, c.head_dim, c.max_position_embeddings,
                            loader.max_model_len());
    embed_ = VocabEmbedding(loader, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
    final_norm_ = RmsNorm(loader, "model.norm.weight", c.hidden_size, c.rms_norm_eps);
    lm_head_ = LmHead(loader, embed_, c.tie_word_embeddings, c.vocab_size, c.hidden_size);
    layers_.resize(size_t(c.num_layers));
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Layer& L = layers_[size_t(i)];
      L.post_attn_norm =
          RmsNorm(loader, p + "post_attention_layernorm.weight", c.hidden_size, c.rms_norm_eps);
      L.post_ff_norm =
          RmsNorm(loader, p + "post_feedforward_layernorm.weight", c.hidden_size, c.rms_norm_eps);
      AttentionSpec s;
      s.prefix = p + "self_attn.";
      s.hidden = c.hidden_size;
      s.num_heads = c.num_heads;
      s.num_kv_heads = c.num_kv_heads;
      s.head_dim = c.head_dim;
      s.qkv_bias = s.o_bias = c.qkv_bias;
      s.qk_norm = AttentionSpec::QkNorm::kWholeProjection;
      s.norm_eps = c.rms_norm_eps;
      s.scale = 1.0f / std::sqrt(float(c.head_dim));
      s.rope = &rope_;
      L.attn = std::make_unique<Attention>(s, loader);
      L.mlp = std::make_unique<GatedMlp>(p + "mlp.", c.hidden_size, c.intermediate_size,
                                         Activation::kSilu, false, loader);
    }
  }

  std::vector<int64_t> workspace_columns() const override {
    const int64_t F = cfg_.intermediate_size;
    return {cfg_.hidden_size,
            cfg_.hidden_size,
            cfg_.q_size() + 2 * cfg_.kv_size(),
            cfg_.q_size(),
            2 * F,
            F};
  }

  void forward(const ForwardContext& ctx, Tensor h) override {
    KernelOps& ops = ctx.ops;
    const DeviceBatch& b = ctx.batch;
    Tensor x = ctx.buffer(0), residual = ctx.buffer(1), qkv = ctx.buffer(2), attn = ctx.buffer(3);
    Tensor gate_up = ctx.buffer(4), act = ctx.buffer(5);
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

  void compute_logits(KernelOps& ops, const Tensor& rows, Tensor logits) const override {
    lm_head_.forward(ops, rows, logits);
  }

 private:
  struct Layer {
    RmsNorm post_attn_norm, post_ff_norm;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<GatedMlp> mlp;
  };
  RopeTable rope_;
  VocabEmbedding embed_;
  RmsNorm final_norm_;
  LmHead lm_head_;
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
