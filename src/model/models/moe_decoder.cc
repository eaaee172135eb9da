// The pre-norm MoE decoder (moe_decoder.h).
#include "model/models/moe_decoder.h"

#include <algorithm>

#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"

namespace inferd {

MoeDecoderModel::MoeDecoderModel(const ModelConfig& c, const MoeNames& names, ModelLoader& loader)
    : DecoderBase(c, loader) {
  layers_.resize(size_t(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    Layer& L = layers_[size_t(i)];
    L.input_norm = RmsNorm(loader, p + "input_layernorm.weight", c.hidden_size, c.rms_norm_eps);
    L.post_norm =
        RmsNorm(loader, p + "post_attention_layernorm.weight", c.hidden_size, c.rms_norm_eps);
    L.attn = std::make_unique<Attention>(attention_spec(i), loader);
    if (!c.is_moe_layer(i)) {
      L.mlp = std::make_unique<GatedMlp>(p + "mlp.", c.hidden_size, c.intermediate_size,
                                         Activation::kSilu, false, loader);
      continue;
    }
    MoeSpec s;
    s.prefix = p + names.block;
    // transformers 5 saves every family's block as "mlp." (its conversion renames Mixtral's
    // block_sparse_moe): the checkpoint decides.
    const SafetensorsIndex* st = loader.checkpoint_if_any();
    if (st != nullptr && names.block != "mlp." &&
        !st->contains(s.prefix + names.router + ".weight") &&
        st->contains(p + "mlp." + names.router + ".weight"))
      s.prefix = p + "mlp.";
    s.router_name = names.router;
    s.gate_name = names.gate;
    s.up_name = names.up;
    s.down_name = names.down;
    s.hidden = c.hidden_size;
    s.expert_intermediate = c.moe_intermediate_size;
    s.num_experts = c.num_experts;
    s.top_k = c.num_experts_per_tok;
    s.renormalize = c.norm_topk_prob;
    s.softmax_before_topk = names.softmax_before_topk;
    L.moe = make_moe_layer(s, loader);
  }
}

std::vector<int64_t> MoeDecoderModel::workspace_columns() const {
  std::vector<int64_t> cols = DecoderBase::workspace_columns();
  int64_t moe = 0;
  for (const Layer& L : layers_)
    if (L.moe) moe = std::max(moe, L.moe->workspace_columns());
  cols.push_back(std::max<int64_t>(moe, 1));
  return cols;
}

void MoeDecoderModel::forward(const ForwardContext& ctx, Tensor h) {
  KernelOps& ops = ctx.ops;
  const DeviceBatch& b = ctx.batch;
  Tensor x = ctx.buffer(kX), residual = ctx.buffer(kResidual), qkv = ctx.buffer(kQkv);
  Tensor attn = ctx.buffer(kAttn), gate_up = ctx.buffer(kGateUp), act = ctx.buffer(kAct);
  Tensor scratch = ctx.buffer(kMoeScratch);
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
    if (L.moe) {
      L.moe->forward(ops, h, scratch, x);
    } else {
      L.mlp->forward(ops, h, gate_up, act, x);
    }
  }
  ops.add_rms_norm(residual, x, final_norm_.weight, final_norm_.eps, h);
}

int64_t MoeDecoderModel::num_moe_layers() const {
  int64_t n = 0;
  for (const Layer& L : layers_) n += L.moe != nullptr;
  return n;
}

void MoeDecoderModel::set_expert_counts(const Tensor& counts) {
  int64_t i = 0;
  for (Layer& L : layers_) {
    if (!L.moe) continue;
    L.moe->set_expert_counts(counts.defined() ? counts.slice_rows(i, i + 1) : Tensor());
    ++i;
  }
}

}  // namespace inferd
