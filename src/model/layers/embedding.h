// The token embedding and the language-model head. The embedding table may be scaled (Gemma:
// sqrt(hidden_size) rounded to the checkpoint's dtype; Granite: embedding_multiplier); the head is
// a separate lm_head or the embedding table itself (tied), with Gemma's final soft-capping and
// Granite's logits_scaling applied to the fp32 logits it writes. Under tensor parallelism both are
// vocabulary-parallel when the vocabulary divides evenly into the ranks: each rank keeps its 1/size
// of the rows; the embedding's rows (zeros for ids outside the rank's) are all-reduced and the
// head's logits all-gathered. Otherwise both are whole on every rank.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "model/layers/linear.h"

namespace inferd {

class ModelLoader;

class VocabEmbedding {
 public:
  VocabEmbedding() = default;
  // `name`: "model.embed_tokens.weight".
  VocabEmbedding(ModelLoader& loader, const std::string& name, int64_t vocab, int64_t hidden);
  // out [T, hidden] = table[ids] * scale
  void forward(KernelOps& ops, const DeviceBatch& b, Tensor out) const {
    if (blocks_.rows > 0) {
      ops.embedding_ggml(blocks_, b, scale_, out);
    } else if (comm_ != nullptr) {
      ops.embedding_shard(table_, vocab_begin_, b, scale_, out);
      comm_->all_reduce_sum(out);
    } else {
      ops.embedding(table_, b, scale_, out);
    }
  }
  void set_scale(float s) { scale_ = s; }
  // Gemma: sqrt(hidden_size) as transformers computes it, a tensor in the weights' dtype (so
  // sqrt(3072) = 55.43 is 55.5 in bf16).
  void scale_by_sqrt_hidden();
  // The (rank's rows of the) table, and whether it is vocabulary-parallel.
  const Tensor& table() const { return table_; }
  bool vocab_parallel() const { return comm_ != nullptr; }

 private:
  Tensor table_;
  Communicator* comm_ = nullptr;  // vocabulary-parallel: the group the rows are summed over
  int64_t vocab_begin_ = 0;       // the first vocabulary row of table_
  GgmlLinear::Part blocks_;       // a GGUF table kept in its block type (rows > 0), else table_
  DType stored_dtype_ = DType::kF32;
  int64_t hidden_ = 0;
  float scale_ = 1.0f;
};

class LmHead {
 public:
  LmHead() = default;
  // The checkpoint's lm_head.weight, or the embedding table when `tied`. Unquantized always,
  // except in GGUF files: there it keeps the file's block type (through the gguf method).
  LmHead(ModelLoader& loader, const VocabEmbedding& embedding, bool tied, int64_t vocab,
         int64_t hidden);
  void set_softcap(double cap) { softcap_ = float(cap); }
  void set_divisor(double d) { divisor_ = float(d); }
  // logits [n, vocab] (fp32) of hidden rows [n, hidden].
  void forward(KernelOps& ops, const Tensor& rows, Tensor logits) const;

 private:
  Linear w_;
  LinearLayer gguf_;  // GGUF files: the lm_head through the gguf method
  bool use_gguf_ = false;
  // Vocabulary-parallel: w_ holds this rank's rows; the logits of all ranks are gathered.
  Communicator* gather_ = nullptr;
  int rank_ = 0;
  float softcap_ = 0;
  float divisor_ = 1.0f;
};

}  // namespace inferd
