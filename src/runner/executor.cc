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

void ModelExecutor::check_greedy_chain(const ForwardBatch& batch, int32_t rounds,
                                       std::span<const int32_t> out) const {
  const size_t S = batch.seqs.size();
  INFERD_CHECK(rounds >= 1 && S > 0 && out.size() == size_t(rounds) * S,
               "a greedy chain of {} rounds over {} sequences with {} outputs", rounds, S,
               out.size());
  INFERD_CHECK(size_t(batch.num_tokens()) == S && batch.logit_rows.size() == S,
               "a greedy chain starts from a decode batch ({} tokens, {} sequences, {} logit rows)",
               batch.num_tokens(), S, batch.logit_rows.size());
  for (size_t s = 0; s < S; ++s) {
    const SeqBatchInfo& sq = batch.seqs[s];
    INFERD_CHECK(sq.q_len == 1 && sq.q_start == int32_t(s) && batch.logit_rows[s] == int32_t(s) &&
                     batch.positions[s] == sq.kv_len - 1,
                 "greedy chain sequence {}: q_len {}, row {}, logit row {}, position {} of {}", s,
                 sq.q_len, sq.q_start, batch.logit_rows[s], batch.positions[s], sq.kv_len);
    INFERD_CHECK(int64_t(sq.kv_len) + rounds - 1 <= int64_t(sq.num_blocks) * block_size(),
                 "greedy chain sequence {}: {} rounds from kv_len {} need more than its {} blocks",
                 s, rounds, sq.kv_len, sq.num_blocks);
  }
}

void ModelExecutor::execute_greedy_chain(const ForwardBatch& batch, int32_t rounds,
                                         std::span<int32_t> out) {
  check_greedy_chain(batch, rounds, out);
  const size_t S = batch.seqs.size();
  ForwardBatch b = batch;
  SamplingBatch sampling;
  sampling.rows.resize(S);  // temperature 0: argmax, lowest id on ties
  std::vector<SampledToken> got(S);
  for (int32_t j = 0; j < rounds; ++j) {
    if (j > 0) {
      for (size_t s = 0; s < S; ++s) {
        b.token_ids[s] = out[size_t(j - 1) * S + s];
        ++b.positions[s];
        ++b.seqs[s].kv_len;
      }
    }
    execute(b, sampling, got);
    for (size_t s = 0; s < S; ++s) out[size_t(j) * S + s] = got[s].token_id;
  }
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
