// The pre-norm decoder of the Llama family, shared by the families whose layers are Llama's with
// other config keys (models/llama.cc: Llama 2/3/3.1/3.2, Mistral; qwen2.cc; qwen3.cc; phi3.cc;
// granite.cc): x -> embedding (* a multiplier) -> per layer h = norm(residual); residual +=
// attention(h) * m; residual += mlp(norm(residual)) * m -> final norm -> lm_head (/ logits
// scaling). What differs between them is config: biases, per-head q/k norms, sliding windows, fused
// checkpoint tensors (Phi-3), Granite's multipliers.
#pragma once

#include <memory>
#include <vector>

#include "model/causal_lm.h"
#include "model/layers/attention.h"
#include "model/layers/embedding.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"

namespace inferd {

class LlamaModel final : public CausalLM {
 public:
  LlamaModel(const ModelConfig& config, ModelLoader& loader);
  std::vector<int64_t> workspace_columns() const override;
  void forward(const ForwardContext& ctx, Tensor hidden) override;
  void compute_logits(KernelOps& ops, const Tensor& rows, Tensor logits) const override {
    lm_head_.forward(ops, rows, logits);
  }

 private:
  struct Layer {
    RmsNorm input_norm, post_norm;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<GatedMlp> mlp;
  };
  RopeTable rope_, rope_local_;
  VocabEmbedding embed_;
  RmsNorm final_norm_;
  LmHead lm_head_;
  std::vector<Layer> layers_;
};

// The attention of layer `i` of a Llama-family config (biases, q/k norms, window, rope, scale).
AttentionSpec llama_attention_spec(const ModelConfig& c, int64_t i, const RopeTable& rope,
                                   const RopeTable& rope_local);

}  // namespace inferd
