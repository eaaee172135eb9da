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
#include "backend/moe_types.h"
#include "model/layers/mlp.h"

namespace inferd {

class ModelLoader;

struct MoeSpec {
  // "model.layers.<i>.mlp.": the router is `<prefix><router_name>.weight` [E, H], the experts
  // `<prefix>experts.` (MoeExpertsSpec says both layouts).
  std::string prefix;
  std::string router_name = "gate";
  std::string gate_name = "gate_proj", up_name = "up_proj", down_name = "down_proj";
  int64_t hidden = 0;
  int64_t expert_intermediate = 0;
  int64_t num_experts = 0;
  int64_t top_k = 0;
  bool renormalize = true;          // norm_topk_prob (Qwen3-MoE), true for Mixtral
  bool softmax_before_topk = true;  // Qwen3-MoE / Mixtral: softmax over all, then top-k
  Activation activation = Activation::kSilu;
  int64_t shared_expert_intermediate = 0;  // 0: no shared expert
  // gpt-oss: a router bias, expert biases, experts stored input-major with gate/up interleaved,
  // the clamped SwiGLU (MoeExpertsSpec says the layout).
  bool router_bias = false;
  bool expert_bias = false;
  bool experts_transposed = false;
  bool gate_up_interleaved = false;
  MoeExperts::Act expert_act = MoeExperts::Act::kSilu;
  float act_alpha = 1.702f, act_limit = 7.0f;
};

class MoeLayer {
 public:
  virtual ~MoeLayer() = default;
  // Workspace columns the layer needs beyond the dense MLP's ([max_tokens, cols] each, in the
  // activation dtype: counted for 2-byte elements, so fp32 activations fit too).
  virtual int64_t workspace_columns() const = 0;
  // out [T, hidden] for x [T, hidden]; `scratch` [T, workspace_columns()] (a contiguous buffer).
  virtual void forward(KernelOps& ops, const Tensor& x, Tensor scratch, Tensor out) const = 0;
  // The step profile's expert-load histogram: while `counts` ([num_experts] int32 on the
  // backend's device) is defined, each forward adds the tokens routed to each expert to it.
  virtual void set_expert_counts(Tensor counts) = 0;
  virtual const MoeSpec& spec() const = 0;
  virtual const MoeExperts& experts() const = 0;
};

// The router (unquantized: its few rows decide everything downstream) and the experts through the
// loader's quantization config (QuantizationConfig::create_moe_experts).
std::unique_ptr<MoeLayer> make_moe_layer(const MoeSpec& spec, ModelLoader& loader);

// The experts part of `spec`, as make_moe_layer hands it to the quantization config.
MoeExpertsSpec moe_experts_spec(const MoeSpec& spec);

}  // namespace inferd
