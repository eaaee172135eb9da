// Token embedding and language-model head (embedding.h).
#include "model/layers/embedding.h"

#include <cmath>

#include "core/error.h"
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
  const Tensor stored = loader.weight(name, {vocab, hidden});
  stored_dtype_ = loader.dummy() ? loader.options().dummy_dtype : stored.dtype();
  table_ = loader.runtime().make_param(stored);
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
  } else if (!tied) {
    w_ = rt.make_linear({loader.weight("lm_head.weight", {vocab, hidden})}, Tensor());
  } else if (loader.dummy()) {
    w_ = rt.make_linear({embedding.table()}, Tensor());
  } else {
    // The same mapped bytes as the embedding: the backend reuses the table it placed.
    w_ = rt.make_linear({loader.weight("model.embed_tokens.weight", {vocab, hidden})}, Tensor());
  }
}

void LmHead::forward(KernelOps& ops, const Tensor& rows, Tensor logits) const {
  INFERD_CHECK(use_gguf_ || !w_.parts.empty(),
               "the model was loaded for embeddings (--task embed): no lm_head");
  if (use_gguf_) {
    gguf_.apply(ops, rows, logits);
  } else {
    ops.linear(rows, w_, logits);
  }
  if (softcap_ > 0) ops.softcap(logits, softcap_);
  if (divisor_ != 1.0f) ops.div_scalar(logits, divisor_);
}

}  // namespace inferd
