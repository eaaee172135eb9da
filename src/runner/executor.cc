// The default ModelExecutor::execute (logits to the host, then the reference sampler) and the
// default sleep mode (none).
#include "runner/executor.h"

#include "core/error.h"

namespace inferd {

ModelExecutor::~ModelExecutor() = default;

void ModelExecutor::sleep(int level) {
  fail("sleep mode (level {}): this model executor cannot sleep", level);
}

void ModelExecutor::wake_up() {}

void ModelExecutor::execute(const ForwardBatch& batch, const SamplingBatch& sampling,
                            std::span<SampledToken> out) {
  const size_t rows = batch.logit_rows.size();
  INFERD_CHECK(sampling.rows.size() == rows && out.size() == rows,
               "{} logit rows, {} sampling rows, {} outputs", rows, sampling.rows.size(),
               out.size());
  const size_t need = rows * size_t(vocab_size());
  if (host_logits_.size() < need) host_logits_.resize(need);
  forward(batch, host_logits_.data());
  if (rows == 0) return;
  if (!host_sampler_) host_sampler_ = std::make_unique<ReferenceSampler>();
  host_sampler_->sample(host_logits_.data(), vocab_size(), sampling, out);
}

bool ModelExecutor::takes_images(std::string* why_not) const {
  if (why_not) *why_not = "the model has no vision tower";
  return false;
}

int32_t ModelExecutor::image_tokens(const media::PixelValues& pv) const {
  (void)pv;
  fail("this model executor takes no images");
}

void ModelExecutor::add_lora_adapter(int32_t id, std::shared_ptr<const LoraAdapter> adapter) {
  (void)id;
  (void)adapter;
  fail("LoRA adapters need --enable-lora (this model runs without LoRA slots)");
}

void ModelExecutor::remove_lora_adapter(int32_t id) {
  (void)id;
  fail("LoRA adapters need --enable-lora (this model runs without LoRA slots)");
}

}  // namespace inferd
