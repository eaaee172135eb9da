// Llama (2, 3, 3.1, 3.2) and Mistral: LlamaForCausalLM, MistralForCausalLM. The config keys the
// family reads, and the pre-norm decoder (llama.h) the Llama-like families share.
#include "model/models/llama.h"

#include <cmath>

#include "model/config_parsing.h"
#include "model/layers/rope.h"
#include "model/loader/model_loader.h"
#include "model/models/models.h"
#include "model/registry.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

AttentionSpec llama_attention_spec(const ModelConfig& c, int64_t i, const RopeTable& rope,
                                   const RopeTable& rope_local) {
  AttentionSpec s;
  s.prefix = "model.layers." + std::to_string(i) + ".self_attn.";
  s.hidden = c.hidden_size;
  s.num_heads = c.num_heads;
  s.num_kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.qkv_bias = c.qkv_bias;
  s.o_bias = c.o_bias;
  s.fused_qkv = c.fused_qkv_gate_up;
  s.qk_norm = c.qk_norm ? AttentionSpec::QkNorm::kPerHead : AttentionSpec::QkNorm::kNone;
  s.norm_eps = c.rms_norm_eps;
  s.norm_plus_one = c.norm_weight_plus_one;
  s.scale = c.attention_scale > 0 ? float(c.attention_scale) : 1.0f / std::sqrt(float(c.head_dim));
  s.sliding_window = c.window_of(i);
  s.rope = s.sliding_window > 0 && c.has_rope_local ? &rope_local : &rope;
  return s;
}

LlamaModel::LlamaModel(const ModelConfig& c, ModelLoader& loader) : CausalLM(c) {
  DeviceRuntime& rt = loader.runtime();
  rope_ =
      make_rope_table(rt, c.rope, c.head_dim, c.max_position_embeddings, loader.max_model_len());
  if (c.has_rope_local) {
    rope_local_ = make_rope_table(rt, c.rope_local, c.head_dim, c.max_position_embeddings,
                                  loader.max_model_len());
  }
  embed_ = VocabEmbedding(loader, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  if (c.embedding_multiplier > 0) embed_.set_scale(float(c.embedding_multiplier));
  final_norm_ = RmsNorm(loader, "model.norm.weight", c.hidden_size, c.rms_norm_eps);
  lm_head_ = LmHead(loader, embed_, c.tie_word_embeddings, c.vocab_size, c.hidden_size);
  lm_head_.set_divisor(c.logits_scaling);
  layers_.resize(size_t(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer& L = layers_[size_t(i)];
    L.input_norm = RmsNorm(loader, p + "input_layernorm.weight", c.hidden_size, c.rms_norm_eps);
    L.post_norm =
        RmsNorm(loader, p + "post_attention_layernorm.weight", c.hidden_size, c.rms_norm_eps);
    L.attn = std::make_unique<Attention>(llama_attention_spec(c, i, rope_, rope_local_), loader);
    L.mlp = std::make_unique<GatedMlp>(p + "mlp.", c.hidden_size, c.intermediate_size,
                                       Activation::kSilu, c.fused_qkv_gate_up, loader);
  }
}

std::vector<int64_t> LlamaModel::workspace_columns() const {
  const int64_t H = cfg_.hidden_size, F = cfg_.intermediate_size;
  return {H, H, cfg_.q_size() + 2 * cfg_.kv_size(), cfg_.q_size(), 2 * F, F};
}

void LlamaModel::forward(const ForwardContext& ctx, Tensor h) {
  KernelOps& ops = ctx.ops;
  const DeviceBatch& b = ctx.batch;
  Tensor x = ctx.buffer(0), residual = ctx.buffer(1), qkv = ctx.buffer(2), attn = ctx.buffer(3);
  Tensor gate_up = ctx.buffer(4), act = ctx.buffer(5);
  const float m = float(cfg_.residual_multiplier);
  embed_.forward(ops, b, residual);
  // Each layer adds its attention and MLP outputs to `residual`; the MLP's output waits in x for
  // the next layer's (or the final) residual add + norm.
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    if (i == 0) {
      ops.rms_norm(residual, L.input_norm.weight, L.input_norm.eps, h);
    } else {
      ops.add_rms_norm(residual, x, m, L.input_norm.weight, L.input_norm.eps, h);
    }
    L.attn->forward(ops, b, h, qkv, attn, ctx.kv_cache[i], x);
    ops.add_rms_norm(residual, x, m, L.post_norm.weight, L.post_norm.eps, h);
    L.mlp->forward(ops, h, gate_up, act, x);
  }
  ops.add_rms_norm(residual, x, m, final_norm_.weight, final_norm_.eps, h);
}

namespace {

class LlamaArchitecture final : public Architecture {
 public:
  std::vector<std::string> names() const override {
    return {"LlamaForCausalLM", "MistralForCausalLM"};
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
    if (c.architecture == "MistralForCausalLM") {
      // transformers: sliding_window defaults to 4096 when absent; null turns it off; it applies
      // to every layer (Mistral ignores layer_types).
      parse_window_on_every_layer(j, src, c, 4096);
    } else if (c.model_type.starts_with("qwen")) {
      parse_qwen_windows(j, src, c);  // a Qwen checkpoint that calls itself Llama
    } else {
      parse_no_sliding_window(j, src, c);
    }
    parse_single_rope(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<LlamaModel>(c, loader);
  }
};

}  // namespace

const Architecture& llama_architecture() {
  static const LlamaArchitecture kArch;
  return kArch;
}

}  // namespace inferd
