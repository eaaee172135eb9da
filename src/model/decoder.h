// DecoderModel: the Llama-family decoder (Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5, Qwen3, Gemma 3,
// Phi-3) written once against the Backend interface; config flags select qkv bias, q/k norm,
// tied embeddings, rope scaling, sliding windows, Gemma's (1 + w) and sandwich norms, scaled
// embeddings, GELU and logit soft-capping, and Phi-3's fused checkpoint weights.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/executor.h"

namespace inferd {

enum class LoadFormat : uint8_t { kAuto, kSafetensors, kDummy };
LoadFormat parse_load_format(const std::string& s);

struct ModelOptions {
  LoadFormat load_format = LoadFormat::kAuto;
  uint64_t dummy_seed = 0;
  DType dummy_dtype = DType::kBF16;  // weight dtype of --load-format dummy
  int32_t block_size = 16;
  int32_t num_kv_blocks = 0;           // 0: derive from kv_cache_bytes
  int64_t kv_cache_bytes = 1ll << 30;  // pool size when num_kv_blocks is 0 (CPU)
  // GPU: the weights, the workspace and the KV pool together take this fraction of the device's
  // memory (the KV pool gets what is left once the rest is placed).
  double gpu_memory_utilization = 0.9;
  int32_t max_num_batched_tokens = 2048;  // workspace is sized for this many tokens per step
  int32_t max_model_len = 0;              // 0: config.max_position_embeddings
  // Most sequences in one step: the logits buffer holds this many rows, and decode steps of up to
  // this many sequences replay CUDA graphs.
  int32_t max_num_seqs = 256;
  bool enforce_eager = false;     // no CUDA graphs (vLLM's --enforce-eager)
  int32_t max_top_logprobs = 20;  // most top logprobs a row may ask for (device sampling)
  // "fp8": linear weights quantized to FP8 per output channel at load (vLLM's --quantization
  // fp8); "": as stored (FP8 checkpoints stay FP8 whatever this says).
  std::string quantization;
};

class DecoderModel final : public ModelExecutor {
 public:
  // Loads config.json (and weights unless dummy) from `model_dir`. Throws Error on bad input.
  DecoderModel(const std::string& model_dir, const ModelOptions& opts,
               std::unique_ptr<Backend> backend);
  ~DecoderModel() override;

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() { return *backend_; }

  int32_t vocab_size() const override { return int32_t(cfg_.vocab_size); }
  int32_t block_size() const override { return opts_.block_size; }
  int32_t num_kv_blocks() const override { return num_blocks_; }
  int32_t max_model_len() const override { return max_model_len_; }
  int32_t max_num_batched_tokens() const override { return opts_.max_num_batched_tokens; }
  int32_t max_top_logprobs() const override;
  void forward(const ForwardBatch& batch, float* logits) override;
  // On a device backend: one upload, the forward pass (a CUDA graph replay for decode batches),
  // sampling on the device, one download of the tokens.
  bool fills_masks_late() const override;
  void execute(const ForwardBatch& batch, const SamplingBatch& sampling,
               std::span<SampledToken> out) override;
  StepTiming step_timing() const override { return backend_->step_timing(); }
  void reset_step_timing() override {
    backend_->reset_step_timing();
    step_buckets_.clear();
  }
  // Batch sizes with a captured CUDA graph (empty in eager mode or on the CPU).
  const std::vector<int32_t>& graph_batch_sizes() const { return graph_sizes_; }
  // Wall time of execute() steps by kind and size since the last reset_step_timing(), one line
  // per bucket ("decode b<=8: 120 steps, 4.9 ms a step, ..."): where a benchmark's time went.
  std::string step_profile() const;
  // Turns graph replay off and on again (tests compare the two paths on one model).
  void set_graphs_enabled(bool on) { graphs_enabled_ = on; }

 private:
  struct Layer {
    Tensor input_norm, post_norm, q_norm, k_norm;
    Tensor pre_ff_norm, post_ff_norm;  // Gemma 3 (sandwich norms)
    Linear qkv, o, gate_up, down;
    KvLayer kv;
  };
  void load_weights(const std::string& model_dir);
  RopeTable make_rope_table(const RopeConfig& rc);
  void allocate_runtime();
  void capture_graphs();
  // Embedding, the layers and the final norm: h_ holds the normed hidden state of every row.
  void run_layers(const DeviceBatch& b);
  // Logits of logit rows [r0, r0 + n) of the batch into out [n, vocab] (gather + lm_head).
  void lm_head_pass(const DeviceBatch& b, int64_t r0, int64_t n, Tensor out);
  // run_layers, then (late grammar masks uploaded, built while the layers run) the lm_head and
  // the device sampler for the batch's logit rows.
  void device_step(const DeviceBatch& b, const SamplingBatch& sampling);
  // What a decode graph records: run_layers and the logits of all rows in one pass (the sampler
  // runs after the replay, so that a step's grammar masks can be built while the graph runs).
  void graph_forward(const DeviceBatch& b);
  // The smallest captured batch size >= n, or 0.
  int32_t graph_size_for(int32_t n) const;

  ModelConfig cfg_;
  ModelOptions opts_;
  std::unique_ptr<Backend> backend_;
  Tensor embed_;
  float embed_scale_ = 1.0f;  // Gemma: sqrt(hidden_size) in the checkpoint's dtype
  float attn_scale_ = 1.0f;   // softmax scale of the attention scores
  Tensor final_norm_;
  Linear lm_head_;
  std::vector<Layer> layers_;
  RopeTable rope_;
  RopeTable rope_local_;  // sliding-window layers with their own rope (cfg_.has_rope_local)
  int32_t num_blocks_ = 0;
  int32_t max_model_len_ = 0;
  int64_t rows_per_pass_ = 0;  // logit rows per lm_head pass
  std::vector<int32_t> graph_sizes_;
  bool graphs_enabled_ = true;
  struct StepBucket {
    int64_t steps = 0, tokens = 0;
    double ms = 0;
  };
  std::map<std::pair<int, int32_t>, StepBucket> step_buckets_;  // (mixed?, size bound)
  // Workspace for max_num_batched_tokens rows.
  Tensor x_, residual_, h_, qkv_, attn_, gate_up_, act_, logits_in_, logits_;
};

}  // namespace inferd
