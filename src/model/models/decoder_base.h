// What the decoder-only families share around their layers (llama.cc, gemma3.cc, olmo2.cc): the
// rope tables (a second one for sliding layers that have their own), the token embedding (scaled as
// the config says), the final norm, the lm_head (soft-capping, logits scaling), the activation
// buffers of a dense decoder layer, and the attention of layer i as a Llama-family config describes
// it. A family's model derives from it and writes its layer loop.
#pragma once

#include <vector>

#include "model/causal_lm.h"
#include "model/layers/attention.h"
#include "model/layers/embedding.h"
#include "model/layers/norm.h"
#include "model/parallel.h"

namespace inferd {

class DecoderBase : public CausalLM {
 public:
  // This rank's columns (tensor parallelism: its heads, its share of the MLP).
  std::vector<int64_t> workspace_columns() const override;
  // This rank's KV heads on every layer.
  std::vector<KvCacheSpec> kv_cache_spec() const override;
  void compute_logits(KernelOps& ops, const Tensor& rows, Tensor logits) const override {
    lm_head_.forward(ops, rows, logits);
  }
  Tensor token_embedding_table() const override { return embed_.table(); }

 protected:
  // Loads the rope tables, embedding, final norm (Gemma's (1 + w) when the config says so) and
  // lm_head; the layers are the family's.
  DecoderBase(const ModelConfig& config, ModelLoader& loader);
  // The workspace buffers of workspace_columns(), by index into ForwardContext::buffer.
  enum Buffer : size_t { kX, kResidual, kQkv, kAttn, kGateUp, kAct };
  // Layer i's attention: biases, per-head q/k norms, window, rope (the local one on sliding layers
  // when the config has it), softmax scale (attention_scale, else 1 / sqrt(head_dim)).
  AttentionSpec attention_spec(int64_t i) const;
  // Writes ctx.input_rows (image embeddings) over their rows of `embedded` (after the token
  // embedding and its scaling). Host memory only: Error on a device backend.
  static void write_input_rows(const ForwardContext& ctx, Tensor embedded);
  // "model.layers.<i>."
  static std::string layer_prefix(int64_t i) { return "model.layers." + std::to_string(i) + "."; }

  TensorParallel tp_;  // the loader's
  RopeTable rope_, rope_local_;
  VocabEmbedding embed_;
  RmsNorm final_norm_;
  LmHead lm_head_;
};

}  // namespace inferd
