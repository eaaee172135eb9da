// What the engine needs from a model on some backend: run one flat batch, give logits.
#pragma once

#include <climits>
#include <cstdint>

#include "model/forward_batch.h"

namespace inferd {

class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t block_size() const = 0;     // tokens per KV block
  virtual int32_t num_kv_blocks() const = 0;  // blocks in the KV pool (ids 0..n-1)
  virtual int32_t max_model_len() const = 0;  // longest context the model supports
  // Most tokens one forward() takes (the model's workspace is sized for this many).
  virtual int32_t max_num_batched_tokens() const { return INT32_MAX; }
  // Runs the batch, writing KV for every token, and the logits of batch.logit_rows into
  // `logits` (row-major [logit_rows.size(), vocab_size], fp32, host memory).
  virtual void forward(const ForwardBatch& batch, float* logits) = 0;
};

}  // namespace inferd
