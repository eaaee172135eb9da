// The pre-norm decoder of the mixture-of-experts families that are Llama's with an MoE block in
// place of some MLPs (qwen3_moe.cc: Qwen3MoeForCausalLM, mixtral.cc: MixtralForCausalLM): per
// layer h = norm(residual); residual += attention(h); residual += mlp_or_moe(norm(residual)). The
// config says which layers are sparse (ModelConfig::layer_sparse) and how they route; the family
// file names the checkpoint's tensors (MoeNames).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/layers/attention.h"
#include "model/layers/mlp.h"
#include "model/layers/moe.h"
#include "model/layers/norm.h"
#include "model/models/decoder_base.h"

namespace inferd {

// How a family's checkpoint names its MoE block: `block` after "model.layers.<i>." (Mixtral's
// "block_sparse_moe.", Qwen3-MoE's "mlp."), the router, the per-expert projections.
struct MoeNames {
  std::string block = "mlp.";
  std::string router = "gate";
  std::string gate = "gate_proj", up = "up_proj", down = "down_proj";
  bool softmax_before_topk = true;
};

class MoeDecoderModel final : public DecoderBase {
 public:
  MoeDecoderModel(const ModelConfig& config, const MoeNames& names, ModelLoader& loader);
  std::vector<int64_t> workspace_columns() const override;
  void forward(const ForwardContext& ctx, Tensor hidden) override;
  int64_t num_moe_layers() const override;
  void set_expert_counts(const Tensor& counts) override;

 private:
  enum : size_t { kMoeScratch = kAct + 1 };
  struct Layer {
    RmsNorm input_norm, post_norm;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<GatedMlp> mlp;  // dense layers
    std::unique_ptr<MoeLayer> moe;  // sparse layers
  };
  std::vector<Layer> layers_;
};

}  // namespace inferd
