// The pre-norm decoder of the Llama family, shared by the families whose layers are Llama's with
// other config keys (models/llama.cc: Llama 2/3/3.1/3.2, Mistral; qwen2.cc; qwen3.cc; phi3.cc;
// granite.cc): x -> embedding (* a multiplier) -> per layer h = norm(residual); residual +=
// attention(h) * m; residual += mlp(norm(residual)) * m -> final norm -> lm_head (/ logits
// scaling). What differs between them is config: biases, per-head q/k norms, sliding windows, fused
// checkpoint tensors (Phi-3), Granite's multipliers.
#pragma once

#include <memory>
#include <vector>

#include "model/layers/attention.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "model/models/decoder_base.h"

namespace inferd {

class LlamaModel : public DecoderBase {
 public:
  LlamaModel(const ModelConfig& config, ModelLoader& loader);
  void forward(const ForwardContext& ctx, Tensor hidden) override;
  void attach_lora(const LoraWeights& lora) override;
  bool supports_aux_hidden_states() const override { return true; }

 private:
  struct Layer {
    RmsNorm input_norm, post_norm;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<GatedMlp> mlp;
  };
  std::vector<Layer> layers_;
};

}  // namespace inferd
