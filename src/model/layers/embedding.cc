// Token embedding and language-model head (embedding.h).
#include "model/layers/embedding.h"

#include <cmath>

#include "core/error.h"
#include "core/logging.h"
#include "model/loader/gguf_model.h"
#include "model/loader/model_loader.h"

namespace inferd {

VocabEmbedding::VocabEmbedding(ModelLoader& loader, const std::string& name, int64_t vocab,
                               int64_t hidden)
    : hidden_(hidden) {
  // A GGUF table in a block type stays as it is where the backend gathers from it.
  if (const GgufWeights* g = loader.gguf()) {
    const GgufTensorInfo& t = g->get(name);
    if (loader.runtime().supports_ggml_embedding(t.type)) {
      const int64_t shape[2] = {vocab, hidden};
      blocks_ = {g->raw(name, shape), t.type, vocab};
      return;
    }
  }
  const TensorParallel& tp = loader.options().tp;
  const bool split = tp.enabled() && vocab % tp.size == 0;
  if (tp.enabled() && !split)
    LOG_INFO(
        "tensor parallelism: the vocabulary of {} does not divide into {} ranks: the "
        "embedding and lm_head are whole on every rank",
        vocab, tp.size);
  const int64_t shape[2] = {vocab, hidden};
  const Tensor stored = loader.weight(name, shape, split ? tp.shard(0) : Shard{});
  stored_dtype_ = loader.dummy() ? loader.options().dummy_dtype : stored.dtype();
  table_ = loader.runtime().make_param(stored);
  if (split) {
    comm_ = tp.comm;
    vocab_begin_ = vocab / tp.size * tp.rank;
  }
}

void VocabEmbedding::scale_by_sqrt_hidden() {
  scale_ = float(std::sqrt(double(hidden_)));
  if (stored_dtype_ == DType::kBF16) scale_ = bf16_to_f32(f32_to_bf16(scale_));
  if (stored_dtype_ == DType::kF16) scale_ = f16_to_f32(f32_to_f16(scale_));
}

LmHead::LmHead(ModelLoader& loader, const VocabEmbedding& embedding, bool tied, int64_t vocab,
               int64_t hidden) {
  DeviceRuntime& rt = loader.runtime();
  if (loader.options().pooling_only) return;  // an embedding model: no logits
  if (loader.gguf()) {
    gguf_ = LinearLayer(plain_linear(tied ? "model.embed_tokens" : "lm_head", vocab, hidden, false,
                                     LinearSpec::Parallel::kReplicated),
                        loader);
    use_gguf_ = true;
    return;
  }
  // Vocabulary-parallel exactly when the embedding is (both split the same rows).
  const TensorParallel& tp = loader.options().tp;
  const Shard rows = embedding.vocab_parallel() ? tp.shard(0) : Shard{};
  const int64_t shape[2] = {vocab, hidden};
  if (embedding.vocab_parallel()) {
    gather_ = tp.comm;
    rank_ = tp.rank;
  }
  if (!tied) {
    w_ = rt.make_linear({loader.weight("lm_head.weight", shape, rows)}, Tensor());
  } else if (loader.dummy()) {
    w_ = rt.make_linear({embedding.table()}, Tensor());
  } else {
    // The same mapped bytes as the embedding: the backend reuses the table it placed.
    w_ = rt.make_linear({loader.weight("model.embed_tokens.weight", shape, rows)}, Tensor());
  }
}

void LmHead::forward(KernelOps& ops, const Tensor& rows, Tensor logits) const {
  INFERD_CHECK(use_gguf_ || !w_.parts.empty(),
               "the model was loaded for embeddings (--task embed): no lm_head");
  if (use_gguf_) {
    gguf_.apply(ops, rows, logits);
  } else if (gather_ != nullptr) {
    // This rank's columns of the logits, then every rank's.
    const int64_t v = w_.out_features;
    const Tensor mine = logits.slice_cols(v * rank_, v * (rank_ + 1));
    ops.linear(rows, w_, mine);
    gather_->all_gather(mine, logits, 1);
  } else {
    ops.linear(rows, w_, logits);
  }
  if (softcap_ > 0) ops.softcap(logits, softcap_);
  if (divisor_ != 1.0f) ops.div_scalar(logits, divisor_);
}

}  // namespace inferd
