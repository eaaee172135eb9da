// What the engine needs from a model on some backend: run one flat batch and sample one token for
// each row whose logits are wanted. Logits stay where the model computed them (the GPU samples on
// the device); forward() still hands logits to the host, for tests and tools.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/forward_batch.h"
#include "backend/sampling.h"
#include "backend/step_timing.h"

namespace inferd {

struct LoraAdapter;
namespace media {
struct PixelValues;
}

class ModelExecutor {
 public:
  virtual ~ModelExecutor();
  virtual int32_t vocab_size() const = 0;
  virtual int32_t block_size() const = 0;     // tokens per KV block
  virtual int32_t num_kv_blocks() const = 0;  // blocks in the KV pool (ids 0..n-1)
  virtual int32_t max_model_len() const = 0;  // longest context the model supports
  // Most tokens one forward() takes (the model's workspace is sized for this many).
  virtual int32_t max_num_batched_tokens() const { return INT32_MAX; }
  // Most top logprobs one row may ask for (SamplingRow::num_logprobs).
  virtual int32_t max_top_logprobs() const { return INT32_MAX; }
  // Width of the final hidden states that ForwardBatch::pool_spans sum; 0: no pooling.
  virtual int32_t hidden_size() const { return 0; }
  // True when the model has no lm_head (loaded for embeddings): nothing can be sampled.
  virtual bool pools_only() const { return false; }

  // Vision-language models (issue 34): true when batches may carry image embedding spans
  // (ForwardBatch::embedding_inputs); image_tokens() is then the number of embedding rows (prompt
  // tokens) image `pv` takes, and `why_not` (when false) says why images are refused.
  virtual bool takes_images(std::string* why_not = nullptr) const;
  virtual int32_t image_tokens(const media::PixelValues& pv) const;
  // True when the model's rope takes three positions a row (M-RoPE: Qwen2-VL, Qwen2.5-VL): the
  // engine then fills ForwardBatch::mrope_positions in steps with images.
  virtual bool uses_mrope() const { return false; }

  // Runs the batch, writing KV for every token, and the logits of batch.logit_rows into
  // `logits` (row-major [logit_rows.size(), vocab_size], fp32, host memory).
  virtual void forward(const ForwardBatch& batch, float* logits) = 0;

  // Runs the batch and samples one token for each of batch.logit_rows with sampling.rows (same
  // order; out.size() == logit_rows.size()). The default runs forward() and the reference sampler
  // on the host; a device executor samples where the logits are.
  virtual void execute(const ForwardBatch& batch, const SamplingBatch& sampling,
                       std::span<SampledToken> out);

  // Greedy chains (speculative drafts, issue 26): runs the decode batch `batch` (one token per
  // sequence, each sequence's row its logit row, in order) and then rounds - 1 more one-token steps
  // in which every sequence takes the argmax it just drew as its next token, one position further
  // (each sequence's block table must already hold the block of its last position). out[j * S + s]
  // is round j's argmax for sequence s (S = batch.seqs.size(); out.size() == rounds * S; ties to
  // the lowest id). The default runs execute() round by round; a device executor runs the rounds
  // back to back on the device and comes back to the host once.
  virtual void execute_greedy_chain(const ForwardBatch& batch, int32_t rounds,
                                    std::span<int32_t> out);

  // True when execute() calls SamplingBatch::fill_masks itself while the forward runs on the
  // device (the grammar masks of a step are then built on the host in the shadow of the GPU);
  // false: the caller fills SamplingBatch::masks before execute().
  virtual bool fills_masks_late() const { return false; }

  // The sums of the last forward() / execute() batch's pool_spans: row-major
  // [pool_spans.size(), hidden_size()], fp32 (accumulated in fp32 from the activation dtype).
  // Valid until the next step.
  virtual std::span<const float> pooled() const { return {}; }

  // EAGLE-3 (issue 26), the target: the residual stream entering each of the layers the runner
  // was asked for (RunnerOptions::aux_hidden_layers), for every row of the last forward() /
  // execute() in the batch's row order: [num_tokens, aux_hidden_width()] fp32, row-major. Empty
  // when not asked. Valid until the next step.
  virtual std::span<const float> aux_hidden_states() const { return {}; }
  virtual int32_t aux_hidden_width() const { return 0; }
  // EAGLE-3, the head. ForwardBatch::hidden_inputs may be fused_width wide (the target's states,
  // through fc) or hidden_size() wide (the head's own output); draft_to_target gives the target id
  // of each draft id (the logits' columns); target_vocab is the vocabulary it was trained for.
  struct HeadInfo {
    int32_t fused_width = 0;  // 0: not a head
    int32_t target_vocab = 0;
    std::vector<int32_t> draft_to_target;
  };
  virtual HeadInfo head_info() const { return {}; }
  // A head: each logit row's pre-norm output of the last forward() ([logit rows, hidden_size()]
  // fp32): the next draft step's hidden input.
  virtual std::span<const float> recurrent_hidden() const { return {}; }

  // Throws DeviceFault when the device can run nothing more (after a step failed, to tell a
  // broken device from a broken step); no-op where there is no device.
  virtual void check_device() {}

  // Sleep mode (--enable-sleep-mode; vLLM's LLM.sleep / wake_up). Called with no step in flight
  // and nothing holding KV blocks. Level 1 frees the KV pool and moves the weights off the device
  // (pinned host memory; on the CPU they stay where they are); level 2 frees the weights too, and
  // wake_up() loads them again (from the checkpoint, or dummy weights made anew). The KV cache's
  // contents are gone after wake_up(): the caller forgets its prefix cache. Throws Error for a
  // bad level, when already asleep, or where the executor has no sleep mode.
  virtual void sleep(int level);
  // Brings back what sleep() released; greedy outputs are the same as before. No-op when awake.
  virtual void wake_up();
  virtual int sleep_level() const { return 0; }  // 0: awake
  // LoRA adapters (issue 29): rows whose SeqBatchInfo::adapter_id is `id` run with `adapter`
  // (host weights; the executor moves it into a device slot when a step needs it). Executors
  // without LoRA (max_loras() == 0) refuse.
  virtual void add_lora_adapter(int32_t id, std::shared_ptr<const LoraAdapter> adapter);
  virtual void remove_lora_adapter(int32_t id);
  // Most adapters one step may mix (0: LoRA off).
  virtual int32_t max_loras() const { return 0; }

  // Device time of the execute() steps so far (zeros where the executor does not measure it).
  virtual StepTiming step_timing() const { return {}; }
  virtual void reset_step_timing() {}

 protected:
  // Throws Error unless `batch` can start a greedy chain of `rounds` rounds into `out`.
  void check_greedy_chain(const ForwardBatch& batch, int32_t rounds,
                          std::span<const int32_t> out) const;

 private:
  std::vector<float> host_logits_;
  std::unique_ptr<ReferenceSampler> host_sampler_;
};

}  // namespace inferd
