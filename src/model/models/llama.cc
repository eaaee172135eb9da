// Llama (2, 3, 3.1, 3.2) and Mistral: LlamaForCausalLM, MistralForCausalLM. The config keys the
// family reads, and the pre-norm decoder (llama.h) the Llama-like families share.
#include "model/models/llama.h"

#include "model/config_parsing.h"
#include "model/loader/model_loader.h"
#include "model/lora/lora_weights.h"
#include "model/models/models.h"
#include "model/registry.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

LlamaModel::LlamaModel(const ModelConfig& c, ModelLoader& loader) : DecoderBase(c, loader) {
  layers_.resize(size_t(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    Layer& L = layers_[size_t(i)];
    L.input_norm = RmsNorm(loader, p + "input_layernorm.weight", c.hidden_size, c.rms_norm_eps);
    L.post_norm =
        RmsNorm(loader, p + "post_attention_layernorm.weight", c.hidden_size, c.rms_norm_eps);
    L.attn = std::make_unique<Attention>(attention_spec(i), loader);
    L.mlp = std::make_unique<GatedMlp>(p + "mlp.", c.hidden_size, c.intermediate_size,
                                       Activation::kSilu, c.fused_qkv_gate_up, loader);
  }
}

void LlamaModel::forward(const ForwardContext& ctx, Tensor h) {
  KernelOps& ops = ctx.ops;
  const DeviceBatch& b = ctx.batch;
  Tensor x = ctx.buffer(kX), residual = ctx.buffer(kResidual), qkv = ctx.buffer(kQkv);
  Tensor attn = ctx.buffer(kAttn), gate_up = ctx.buffer(kGateUp), act = ctx.buffer(kAct);
  const float m = float(cfg_.residual_multiplier);
  embed_.forward(ops, b, residual);
  write_input_rows(ctx, residual);  // image embeddings (vision-language subclasses)
  // Each layer adds its attention and MLP outputs to `residual`; the MLP's output waits in x for
  // the next layer's (or the final) residual add + norm.
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    if (i == 0) {
      ops.rms_norm(residual, L.input_norm.weight, L.input_norm.eps, h);
    } else {
      ops.add_rms_norm(residual, x, m, L.input_norm.weight, L.input_norm.eps, h);
    }
    // EAGLE-3: `residual` is now the stream entering layer i.
    for (size_t j = 0; ctx.aux_hidden.defined() && j < ctx.aux_layers.size(); ++j) {
      if (ctx.aux_layers[j] != int32_t(i)) continue;
      const int64_t H = cfg_.hidden_size;
      ops.copy_rows(residual, ctx.aux_hidden.slice_cols(int64_t(j) * H, int64_t(j + 1) * H));
    }
    L.attn->forward(ops, b, h, qkv, attn, ctx.kv_cache[i], x);
    ops.add_rms_norm(residual, x, m, L.post_norm.weight, L.post_norm.eps, h);
    L.mlp->forward(ops, b, h, gate_up, act, x);
  }
  ops.add_rms_norm(residual, x, m, final_norm_.weight, final_norm_.eps, h);
}

void LlamaModel::attach_lora(const LoraWeights& lora) {
  // Phi-3's checkpoint names its merged projections qkv_proj and gate_up_proj: PEFT adapters of
  // it target those, which the slots (q/k/v, gate/up apart) do not describe.
  if (cfg_.fused_qkv_gate_up)
    fail("LoRA adapters are not supported for {} (fused qkv_proj / gate_up_proj)",
         cfg_.architecture);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t l = int64_t(i);
    layers_[i].attn->set_lora(&lora.linear(l, LoraWeights::kQkv), &lora.linear(l, LoraWeights::kO));
    layers_[i].mlp->set_lora(&lora.linear(l, LoraWeights::kGateUp),
                             &lora.linear(l, LoraWeights::kDown));
  }
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
