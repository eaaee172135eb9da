// The mixture-of-experts layer interface (issue 27 fills it): a router linear scores every
// token's experts, the top-k are chosen (softmax over all logits then top-k, or top-k then
// softmax, with or without renormalisation), and the tokens go through the chosen experts' gated
// MLPs in one grouped GEMM, their outputs weighted and summed. An architecture file builds its
// sparse layers from a MoeSpec exactly as it builds a GatedMlp for a dense one; expert weights are
// created by the linear's quantization method (bf16, FP8, MXFP4 experts).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "model/layers/mlp.h"

namespace inferd {

class ModelLoader;

struct MoeSpec {
  std::string prefix;  // "model.layers.<i>.mlp."
  int64_t hidden = 0;
  int64_t expert_intermediate = 0;
  int64_t num_experts = 0;
  int64_t top_k = 0;
  bool renormalize = true;          // norm_topk_prob (Qwen3-MoE), true for Mixtral
  bool softmax_before_topk = true;  // Qwen3-MoE / Mixtral: softmax over all, then top-k
  Activation activation = Activation::kSilu;
  int64_t shared_expert_intermediate = 0;  // 0: no shared expert
};

class MoeLayer {
 public:
  virtual ~MoeLayer() = default;
  // Workspace columns the layer needs beyond the dense MLP's ([max_tokens, cols] each).
  virtual int64_t workspace_columns() const = 0;
  // out [T, hidden] for x [T, hidden]; `scratch` [T, workspace_columns()].
  virtual void forward(KernelOps& ops, const Tensor& x, Tensor scratch, Tensor out) const = 0;
};

// No MoE kernels exist yet: throws Error naming the layer (the MoE issue replaces this).
std::unique_ptr<MoeLayer> make_moe_layer(const MoeSpec& spec, ModelLoader& loader);

}  // namespace inferd
