// The sampler: one batched pass from logits [R, V] and per-row parameters to token ids and
// logprobs. A backend may replace it (the CUDA backend samples on the GPU); the CPU version is the
// reference. See include/inferd/sampling_params.h for the processing order.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/rng.h"
#include "inferd/engine.h"
#include "inferd/sampling_params.h"

namespace inferd {

struct SamplerRow {
  const SamplingParams* params = nullptr;
  Rng* rng = nullptr;               // the sequence's generator (advanced by one draw when
                                    // the row is sampled randomly, untouched when greedy)
  std::span<const int32_t> prompt;  // for the repetition penalty
  std::span<const int32_t> output;  // generated so far (all penalties)
  std::span<const int32_t> banned;  // masked to -inf (EOS/stop ids before min_tokens)
};

struct SampledToken {
  int32_t token_id = 0;
  bool has_logprobs = false;
  SampleLogprobs logprobs;  // when params->logprobs is set
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  // `logits` is row-major [rows.size(), vocab] in host memory and may be overwritten.
  virtual void sample(float* logits, int32_t vocab, std::span<const SamplerRow> rows,
                      std::span<SampledToken> out) = 0;
};

class CpuSampler : public Sampler {
 public:
  void sample(float* logits, int32_t vocab, std::span<const SamplerRow> rows,
              std::span<SampledToken> out) override;

 private:
  void sample_row(float* logits, int32_t vocab, const SamplerRow& row, SampledToken& out);

  std::vector<float> raw_;
  std::vector<float> prob_;
  std::vector<int32_t> count_;  // [vocab] occurrences in output (scratch, kept zero)
  std::vector<uint8_t> seen_;   // [vocab] occurs in prompt or output (scratch, kept zero)
  std::vector<int32_t> touched_;
  std::vector<int32_t> cand_;
};

}  // namespace inferd
