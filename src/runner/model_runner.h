// The model runner: how a model RUNS (the model itself, model/causal_lm.h, says what it
// computes). It loads the model through the registry, sizes and owns the workspace and the paged
// KV cache (--gpu-memory-utilization on a GPU), uploads each flat batch once, runs the model and
// its lm_head, samples on the device, captures and replays CUDA graphs for decode steps, and keeps
// the step profile. It is the engine's ModelExecutor.
//
// Per step on a device backend: one upload (prepare_batch), the forward (a graph replay for decode
// batches), sampling on the device, one download of the tokens (finish_samples); nothing is
// allocated once the constructor returns.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/causal_lm.h"
#include "model/loader/kv_cache_scales.h"
#include "model/loader/model_loader.h"
#include "model/lora/lora_weights.h"
#include "runner/executor.h"
#include "runner/image_embedding_cache.h"
#include "runner/lora_slots.h"
#include "runner/step_profile.h"

namespace inferd {

struct RunnerOptions {
  LoadOptions load;
  int32_t block_size = 16;
  int32_t num_kv_blocks = 0;           // 0: derive from kv_cache_bytes / gpu_memory_utilization
  int64_t kv_cache_bytes = 1ll << 30;  // pool size when num_kv_blocks is 0 (CPU)
  // --kv-cache-dtype fp8: keys and values stored as float8 e4m3 with the checkpoint's per-tensor
  // scales (1 without them); else in the activation dtype. Backends where supports_fp8_kv_cache.
  bool kv_cache_fp8 = false;
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
  // Speculative decoding: logit rows a step may have beyond one a sequence (the draft rows), so
  // that the sampler's edits and grammar masks are reserved for them at start and the logits
  // buffer holds them (a verification step is one lm_head pass: [max_num_seqs + these, vocab]
  // fp32, at most max_num_batched_tokens rows).
  int32_t max_extra_logit_rows = 0;
  // Speculative verification steps (every row of a sequence sampled, 1..1 + k rows a sequence)
  // replay CUDA graphs captured for k = num_speculative_tokens and 1..max_speculative_seqs
  // sequences (0: such steps run eagerly). Rows of sequences with fewer drafts are padded.
  int32_t num_speculative_tokens = 0;
  int32_t max_speculative_seqs = 0;
  // Draft distributions (q rows of the target's vocabulary) a step may carry: sampled drafts of
  // a draft model, verified by the device sampler's rejection rule. Sizes the step buffer.
  int32_t max_draft_prob_rows = 0;
  // Test-only (--debug-inject-device-fault after_steps=N): the first N steps run, the next one
  // makes the device fail (DeviceRuntime::inject_device_fault). Negative: never.
  int64_t inject_device_fault_after_steps = -1;
  // --enable-sleep-mode: sleep() / wake_up() work (on a GPU the weights and the KV pool are then
  // allocated so that they can leave the device and come back at the same addresses).
  bool enable_sleep_mode = false;
  // LoRA (issue 29; vLLM's --max-loras, --max-lora-rank): slots for this many adapters in one
  // step, each module of rank at most max_lora_rank. 0: LoRA off (rows with adapters are refused).
  int32_t max_loras = 0;
  int32_t max_lora_rank = 16;
  // MoE models: count the tokens routed to each expert of each sparse layer (on the device; the
  // counts are read back only for step_profile()), for the step profile's expert-load line.
  bool expert_load_profile = false;
  // Vision-language models (issue 34): bytes of image embeddings kept by image content hash.
  int64_t image_cache_bytes = int64_t(256) << 20;
  // EAGLE-3 (issue 26): the target hands out the residual stream entering these layers for
  // every row of each step (aux_hidden_states(): one copy to the host a step). Empty: nothing is
  // copied (a run without EAGLE-3 costs nothing).
  std::vector<int32_t> aux_hidden_layers;
};

class ModelRunner final : public ModelExecutor {
 public:
  // Loads config.json and the weights (unless dummy) from `model_dir`. Throws Error on bad input.
  ModelRunner(const std::string& model_dir, const RunnerOptions& opts,
              std::unique_ptr<Backend> backend);
  ~ModelRunner() override;

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return *backend_; }
  CausalLM& model() { return *model_; }

  int32_t vocab_size() const override { return int32_t(config().vocab_size); }
  int32_t block_size() const override { return opts_.block_size; }
  int32_t num_kv_blocks() const override { return num_blocks_; }
  int32_t max_model_len() const override { return max_model_len_; }
  int32_t max_num_batched_tokens() const override { return opts_.max_num_batched_tokens; }
  int32_t max_top_logprobs() const override;
  int32_t hidden_size() const override { return int32_t(config().hidden_size); }
  bool pools_only() const override { return opts_.load.pooling_only; }
  std::span<const float> pooled() const override { return pooled_; }
  void forward(const ForwardBatch& batch, float* logits) override;
  bool fills_masks_late() const override;
  void execute(const ForwardBatch& batch, const SamplingBatch& sampling,
               std::span<SampledToken> out) override;
  // On a device that samples, with the decode graph of the batch's size: every round replays it,
  // the argmaxes fed to the next round on the device, one copy to the host at the end.
  void execute_greedy_chain(const ForwardBatch& batch, int32_t rounds,
                            std::span<int32_t> out) override;
  void check_device() override { backend_->check_device(); }
  std::span<const float> aux_hidden_states() const override { return aux_host_; }
  int32_t aux_hidden_width() const override {
    return int32_t(opts_.aux_hidden_layers.size() * size_t(config().hidden_size));
  }
  HeadInfo head_info() const override;
  std::span<const float> recurrent_hidden() const override { return recurrent_host_; }
  void add_lora_adapter(int32_t id, std::shared_ptr<const LoraAdapter> adapter) override;
  void remove_lora_adapter(int32_t id) override;
  int32_t max_loras() const override { return opts_.max_loras; }
  bool takes_images(std::string* why_not = nullptr) const override;
  int32_t image_tokens(const media::PixelValues& pv) const override;
  bool uses_mrope() const override { return config().rope.mrope_section[0] > 0; }
  // The image embeddings cache (tests: hits and misses).
  const ImageEmbeddingCache& image_cache() const { return image_cache_; }
  // The slot of each resident adapter (tests): -1 when it waits in host memory.
  int32_t lora_slot_of(int32_t id) const { return lora_slots_ ? lora_slots_->find(id) : -1; }
  StepTiming step_timing() const override { return backend_->step_timing(); }
  void reset_step_timing() override {
    backend_->reset_step_timing();
    profile_.clear();
    if (expert_counts_.defined()) expert_base_ = read_expert_counts();
  }
  // Sleep mode (ModelExecutor's contract). Level 2 drops the model and loads it again on wake,
  // capturing the CUDA graphs again (the new weights may sit at other addresses); level 1 keeps
  // every address, so the graphs replay as they are.
  void sleep(int level) override;
  void wake_up() override;
  int sleep_level() const override { return sleep_level_; }
  // The KV pool's bytes.
  int64_t kv_cache_bytes() const { return kv_bytes_; }
  // Bytes of the weights the loader handed out: slices of sharded tensors (tensor parallelism:
  // this rank's shard) and whole tensors (ModelLoader::sharded_bytes / whole_bytes).
  int64_t loaded_sharded_bytes() const { return loaded_sharded_bytes_; }
  int64_t loaded_whole_bytes() const { return loaded_whole_bytes_; }
  // Batch sizes with a captured CUDA graph (empty in eager mode or on the CPU).
  const std::vector<int32_t>& graph_batch_sizes() const { return graph_sizes_; }
  // Sequence counts with a captured verification graph (1 + num_speculative_tokens rows each).
  const std::vector<int32_t>& verify_graph_batch_sizes() const { return verify_sizes_; }
  // Verification steps that replayed a graph since the start (tests).
  int64_t verify_graph_replays() const { return verify_replays_; }
  // Wall time of execute() steps by kind and size since the last reset_step_timing(), and with
  // expert_load_profile the expert load of each MoE layer over the same steps.
  std::string step_profile() const;
  // Turns graph replay off and on again (tests compare the two paths on one model).
  void set_graphs_enabled(bool on) { graphs_enabled_ = on; }

 private:
  void check_options() const;
  // Loads the weights (sleep mode: under MemoryTag::kWeights) into model_.
  void load_weights();
  void allocate_workspace();
  // The KV pool's layers for num_blocks_ blocks (sleep mode: under MemoryTag::kKvCache).
  void allocate_kv_layers();
  void allocate_kv_cache();
  DType kv_dtype() const;  // the KV cache's element type
  void capture_graphs();
  // The graphs of verification steps (options' num_speculative_tokens); capture_graphs' warm-up
  // and capture of one shape: `n` sequences, rows_per_seq rows each (0: a decode batch of n).
  void capture_verify_graphs();
  void capture_one(int32_t key, int32_t n, int32_t rows_per_seq);
  // The graph key of verification steps of `n` sequences (decode graphs use n itself).
  int32_t verify_key(int32_t n) const { return ((1 + opts_.num_speculative_tokens) << 20) | n; }
  // Whether fb (not a decode batch) is a verification step: every row sampled (no scoring rows,
  // no pooling). A verification graph replays it when no sequence has more than 1 + k rows.
  static bool verify_shaped(const ForwardBatch& fb, const SamplingBatch& sampling);
  // Rows with unknown adapters (or any adapter while LoRA is off), embedding spans (no model
  // consumes them yet, issue 34).
  void check_batch(const ForwardBatch& fb) const;
  // Gives every adapter of the batch a slot (loading those not resident into idle slots, LRU) and
  // hands the backend each row's slot; no-op while LoRA is off.
  void prepare_lora(const ForwardBatch& fb);
  // The embeddings of fb's images (from the cache, or the model's vision tower) as input_rows_,
  // and each row's attention range (attend_ranges_) when the model's image tokens see each other.
  void prepare_images(const ForwardBatch& fb);
  // The sums of fb.pool_spans' final hidden states (after run_model) into pooled_.
  void pool(const ForwardBatch& fb);
  // The model over the batch: hidden_ holds the final-normed hidden state of every row.
  void run_model(const DeviceBatch& b);
  // EAGLE-3: the hidden inputs of fb uploaded (a head), for run_model's context.
  void upload_hidden_inputs(const ForwardBatch& fb);
  // EAGLE-3: the step's auxiliary states to the host (aux_host_), in fb's row order;
  // rows_per_seq > 0: the device rows were padded to that many a sequence.
  void download_aux(const ForwardBatch& fb, int32_t device_rows, int32_t rows_per_seq);
  // EAGLE-3, a head: the pre-norm output of the logit rows to the host (recurrent_host_).
  void download_recurrent(const DeviceBatch& b);
  // Logits of logit rows [r0, r0 + n) of the batch into out [n, vocab] (gather + lm_head).
  void lm_head_pass(const DeviceBatch& b, int64_t r0, int64_t n, Tensor out);
  // run_model, then (late grammar masks uploaded, built while the layers run) the lm_head and
  // the device sampler for the batch's logit rows.
  void device_step(const DeviceBatch& b, const SamplingBatch& sampling, const ForwardBatch& fb);
  // What a decode graph records: run_model and the logits of all rows in one pass (the sampler
  // runs after the replay, so that a step's grammar masks can be built while the graph runs).
  void graph_forward(const DeviceBatch& b);
  // The smallest captured batch size >= n among `sizes`, or 0.
  static int32_t graph_size_for(const std::vector<int32_t>& sizes, int32_t n);
  // Rows verifying a sampled draft (SamplingRow::draft_row) name a draft token and a row of
  // SamplingBatch::draft_probs inside the batch (the device sampler reads them unchecked).
  void check_drafts(const SamplingBatch& sampling) const;
  // Counts a step; the one after --debug-inject-device-fault's N makes the device fail.
  void count_step();
  // The Error for a KV cache that --gpu-memory-utilization leaves no room for (the numbers and
  // the flags to change).
  [[noreturn]] void fail_kv_memory(int64_t kv_bytes, int64_t bytes_per_block, int64_t free_bytes,
                                   int64_t total_bytes) const;

  RunnerOptions opts_;
  std::string model_dir_;
  ModelConfig config_;  // the model's (kept while a level-2 sleep has dropped the model)
  std::unique_ptr<Backend> backend_;
  ImageEmbeddingCache image_cache_{opts_.image_cache_bytes};
  std::vector<ImageEmbeddingCache::Embeddings> step_images_;  // this step's, by embedding input
  std::vector<InputRows> input_rows_;
  std::vector<int32_t> attend_ranges_;  // [T, 2]; empty: causal
  std::unique_ptr<CausalLM> model_;
  std::vector<KvCacheSpec> kv_spec_;
  std::vector<KvCacheScales> kv_scales_;  // the checkpoint's FP8 KV cache scales (empty: none)
  // Sleep mode: the backend keeps the weights and the KV pool at fixed addresses (CUDA); false:
  // the runner frees the KV pool itself (host memory).
  bool fixed_addresses_ = false;
  int sleep_level_ = 0;
  int32_t max_model_len_ = 0;
  int32_t num_blocks_ = 0;
  int64_t rows_per_pass_ = 0;      // logit rows per lm_head pass
  std::vector<Tensor> workspace_;  // the model's buffers, [max_num_batched_tokens, cols] each
  Tensor hidden_, logits_in_, logits_;
  std::vector<float> pooled_, pool_rows_;  // pooled(); host copy of one span's rows
  // EAGLE-3: the target's [max tokens, layers x H] states and their host copy; a head's hidden
  // inputs (the widest it takes; hidden_in_view_ is this step's) and its logit rows' outputs.
  Tensor aux_, hidden_in_, hidden_in_view_, recurrent_rows_;
  std::vector<float> aux_host_, aux_padded_, recurrent_host_;
  std::vector<KvLayer> kv_;
  std::vector<int32_t> graph_sizes_, verify_sizes_;
  int64_t verify_replays_ = 0;
  SamplingBatch chain_sampling_;  // execute_greedy_chain's argmax rows (kept between calls)
  bool graphs_enabled_ = true;
  StepProfile profile_;
  // expert_load_profile: [MoE layers, experts] int32 on the device, and its values at the last
  // reset_step_timing() (the counters are never cleared on the device).
  Tensor expert_counts_;
  std::vector<int64_t> expert_base_;
  std::vector<int64_t> read_expert_counts() const;
  std::unique_ptr<LoraWeights> lora_;  // null: LoRA off
  std::unique_ptr<LoraSlotTable> lora_slots_;
  std::map<int32_t, std::shared_ptr<const LoraAdapter>> lora_adapters_;  // by adapter id
  std::vector<int32_t> lora_rows_, lora_busy_;                           // per step
  int64_t steps_ = 0;
  // Device memory (0 on the CPU): free when the runner started (what the CUDA context and other
  // processes held is total - free), and what the weights and the workspace took.
  int64_t start_free_bytes_ = 0, weight_bytes_ = 0, workspace_bytes_ = 0, kv_bytes_ = 0;
  int64_t loaded_sharded_bytes_ = 0, loaded_whole_bytes_ = 0;
};

}  // namespace inferd
