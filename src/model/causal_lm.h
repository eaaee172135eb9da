// What a model IS, as the runner sees it: a causal language model that says which KV cache and
// which activation buffers it needs, runs its layers over a flat batch (embedding, decoder layers,
// final norm), and turns hidden rows into logits. How it runs (workspace, KV sizing, graphs,
// sampling) is the runner's business (src/runner/). One subclass per architecture family
// (models/*.cc), built from the shared layers in layers/.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace inferd {

class ModelLoader;
class LoraWeights;
namespace media {
struct PixelValues;
}

// Rows [row, row + num_rows) of a batch whose input embeddings are `data` (host fp32, row-major
// [num_rows, hidden_size]: an image's embeddings, issue 34) instead of their tokens'.
struct InputRows {
  int32_t row = 0;
  int32_t num_rows = 0;
  const float* data = nullptr;
};

// One layer's KV cache: [num_blocks, block_size, num_kv_heads, head_dim] for k and for v.
struct KvCacheSpec {
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

// What one forward pass gets from the runner.
struct ForwardContext {
  KernelOps& ops;
  const DeviceBatch& batch;
  // The buffers CausalLM::workspace_columns() asked for, [max_tokens, cols_i] each in the
  // activation dtype; buffer(i) is the batch's rows of buffer i.
  std::span<const Tensor> workspace;
  std::span<KvLayer> kv_cache;  // one per entry of kv_cache_spec()
  Tensor buffer(size_t i) const { return workspace[i].slice_rows(0, batch.num_tokens); }
  std::span<const InputRows> input_rows = {};  // rows embedded from images (after the scaling)
  // EAGLE-3 (issue 26), the target: when defined ([T, aux_layers.size() * hidden]), the forward
  // copies the residual stream entering layer aux_layers[j] (the embedding for layer 0) into
  // columns [j * hidden, (j + 1) * hidden) of every row (supports_aux_hidden_states()).
  Tensor aux_hidden = {};
  std::span<const int32_t> aux_layers = {};
  // EAGLE-3, the head: each row's hidden input ([T, width]: the three target states fc fuses, or
  // the head's own previous output), or undefined (padding-only steps: the rows are garbage).
  Tensor hidden_inputs = {};
};

class CausalLM {
 public:
  explicit CausalLM(const ModelConfig& config) : cfg_(config) {}
  virtual ~CausalLM() = default;
  CausalLM(const CausalLM&) = delete;
  CausalLM& operator=(const CausalLM&) = delete;

  const ModelConfig& config() const { return cfg_; }
  // Default: every layer, num_kv_heads x head_dim.
  virtual std::vector<KvCacheSpec> kv_cache_spec() const;
  // Columns of each activation buffer the forward uses (rows: the runner's max tokens a step).
  virtual std::vector<int64_t> workspace_columns() const = 0;
  // The batch's rows through the model: `hidden` [T, hidden_size] gets each row's final-normed
  // hidden state (the model may use it as scratch before).
  virtual void forward(const ForwardContext& ctx, Tensor hidden) = 0;
  // Attaches the runner's LoRA slots to the linears adapters change (issue 29), for the life of
  // the model; forward() then adds each row's adapter (DeviceBatch::lora_slots). The default
  // throws Error: the family takes no adapters.
  virtual void attach_lora(const LoraWeights& lora);
  // Mixture-of-experts models (issue 27): the sparse layers, and the step profile's expert-load
  // counters: each sparse layer i adds the tokens routed to each expert to row i of `counts`
  // ([num_moe_layers(), num_experts] int32 on the backend's device) while it is defined.
  virtual int64_t num_moe_layers() const { return 0; }
  virtual void set_expert_counts(const Tensor& counts) { (void)counts; }
  // Vision-language models (issue 34). takes_images(): the model has a vision tower (else
  // `why_not` says why not); image_tokens(): the rows one image's embeddings take;
  // embed_image(): those rows [image_tokens, hidden_size] (fp32, host), as the model's embedding
  // rows of the image's tokens (ForwardContext::input_rows); image_tokens_attend_each_other():
  // in prefill the tokens of one image attend to each other (DeviceBatch::attend_ranges).
  virtual bool takes_images(std::string* why_not) const;
  virtual int32_t image_tokens(const media::PixelValues& pv) const;
  virtual std::vector<float> embed_image(const media::PixelValues& pv) const;
  virtual bool image_tokens_attend_each_other() const { return false; }
  // logits [n, vocab] (fp32) of hidden rows [n, hidden_size].
  virtual void compute_logits(KernelOps& ops, const Tensor& hidden_rows, Tensor logits) const = 0;
  // EAGLE-3 (issue 26). A target that can hand out the residual stream entering its layers
  // (ForwardContext::aux_hidden): false by default.
  virtual bool supports_aux_hidden_states() const { return false; }
  // The token embedding table ([vocab, hidden], on the device), which an EAGLE-3 head shares;
  // undefined where the model has none in a plain layout (GGUF blocks).
  virtual Tensor token_embedding_table() const { return {}; }
  // A head: the widths its ForwardContext::hidden_inputs may have (largest first), and the
  // workspace buffer holding each row's pre-norm output after forward() (its next step's input);
  // -1: not a head.
  virtual std::vector<int64_t> hidden_input_widths() const { return {}; }
  virtual int32_t recurrent_buffer() const { return -1; }
  // A head: the target id of each draft id (the rows of its logits).
  virtual std::vector<int32_t> draft_to_target() const { return {}; }

 protected:
  ModelConfig cfg_;
};

// The model of `loader.config()`'s architecture (the registry), its weights read through `loader`.
std::unique_ptr<CausalLM> create_model(ModelLoader& loader);

}  // namespace inferd
