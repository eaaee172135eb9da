// Sampling as the executor sees it: per logit row, the parameters and the sparse logit edits
// (SamplingBatch), uploaded with the batch metadata; per row, the sampled token and its logprobs
// (SampledToken). The CPU reference sampler lives here too; the CUDA backend samples on the device
// with the same arithmetic (sampling_math.h) and must give the same tokens from the same logits.
//
// Order in which one row is processed (vLLM V1 order; include/inferd/sampling_params.h):
// A row with score_token >= 0 samples nothing: it gives that token and its logprobs (prompt
// logprobs).
//   0. structured outputs: tokens the row's bitmask does not allow become -inf;
//   1. logprobs come from the raw logits (log-softmax before any processing but step 0);
//   2. edits: banned ids -> -inf, + logit_bias, repetition penalty (prompt + output tokens),
//      frequency * count + presence (output tokens);
//   3. temperature < 1e-5: argmax, lowest id on ties. Otherwise p_i = exp((l_i - max) / T)
//      (exp_neg), then
//      - min_p: tokens with p_i < min_p are dropped (p of the most likely token is 1);
//      - top_k (0 < k < number of tokens left): tokens with p_i below the k-th largest are dropped
//        (ties at the k-th value are kept);
//      - top_p (< 1): masses m_i = floor(p_i * 2^40); sorted by (p desc, id asc), the shortest
//        prefix whose mass reaches floor(top_p * total) is kept (at least one token);
//      - draw: u = Philox(seed, output position) in [0, 1); r = floor(u * kept mass); the token is
//        the first kept token, by id, whose running mass exceeds r (the last kept one if rounding
//        leaves none).
//      - with a sampled draft x ~ q (SamplingRow::draft_row): p_i = m_i / sum m; u1 =
//        Philox(seed, position, stream 1); x is the token when u1 * q(x) < p(x); else the token is
//        drawn (stream 0) from r_i = max(0, p_i - q_i) by id (from p when r sums to 0).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "backend/sampling_math.h"
#include "inferd/engine.h"  // SampleLogprobs

namespace inferd {

using sampling::LogitEdit;
using sampling::SamplingRow;

// Sampling inputs of one step: rows[i] belongs to ForwardBatch::logit_rows[i].
struct SamplingBatch {
  std::vector<SamplingRow> rows;
  std::vector<LogitEdit> edits;
  // Token bitmasks of the rows with a grammar: row m is masks[m * mask_words, +mask_words); bit
  // (t % 32) of word t / 32 set when token t is allowed. mask_words = (vocab + 31) / 32.
  std::vector<uint32_t> masks;
  int32_t mask_words = 0;

  // Masks produced late (device executors that overlap them with the forward, see
  // ModelExecutor::fills_masks_late): when set, `masks` stays empty and the executor calls this
  // once per step, after launching the forward and before sampling, to write num_mask_rows rows
  // of mask_words words at `dst` (host memory).
  std::function<void(uint32_t* dst)> fill_masks;
  int32_t num_mask_rows = 0;
  // Draft distributions of the rows with SamplingRow::draft_row >= 0: row m is
  // draft_probs[m * vocab, +vocab), normalised (the target's vocabulary).
  std::vector<float> draft_probs;

  int32_t num_masks() const {
    if (fill_masks) return num_mask_rows;
    return mask_words > 0 ? int32_t(masks.size() / size_t(mask_words)) : 0;
  }
  void clear() {
    rows.clear();
    edits.clear();
    masks.clear();
    fill_masks = nullptr;
    num_mask_rows = 0;
    draft_probs.clear();
  }
};

struct SampledToken {
  int32_t token_id = 0;
  bool has_logprobs = false;
  SampleLogprobs logprobs;  // when the row asked for them
};

// Builds one row's edits (distinct tokens) from what the engine knows about a sequence.
class LogitEditBuilder {
 public:
  explicit LogitEditBuilder(int32_t vocab = 0) { resize(vocab); }
  void resize(int32_t vocab);

  // Appends the row's edits to `edits` and sets row.edit_begin / edit_count. `banned`: masked ids;
  // `bias`: logit_bias (a token named twice gets the sum, added in order); `prompt` and `output`
  // are read only when row.repetition_penalty != 1 (prompt and output) or a frequency / presence
  // penalty is set (output). Ids must be in [0, vocab).
  void append(SamplingRow& row, std::span<const int32_t> banned,
              std::span<const std::pair<int32_t, float>> bias, std::span<const int32_t> prompt,
              std::span<const int32_t> output, std::vector<LogitEdit>& edits);

 private:
  LogitEdit& edit_of(int32_t token, std::vector<LogitEdit>& edits);
  std::vector<int32_t> index_;  // [vocab]: position in `edits` of the row being built, or -1
  std::vector<int32_t> touched_;
  int32_t begin_ = 0;
};

// The reference sampler: the semantics above, on the host, in fp32 logits and exact integer
// masses. Keeps scratch between calls (one instance per thread).
class ReferenceSampler {
 public:
  // `logits` is row-major [batch.rows.size(), vocab] in host memory and is overwritten.
  void sample(float* logits, int32_t vocab, const SamplingBatch& batch,
              std::span<SampledToken> out);

 private:
  void sample_row(float* logits, int32_t vocab, const SamplingRow& row,
                  std::span<const LogitEdit> edits, const float* draft_q, SampledToken& out);
  void fill_logprobs(const SamplingRow& row, int32_t vocab, int32_t token, SampleLogprobs& lp);

  std::vector<float> raw_;
  std::vector<float> prob_;
  std::vector<int32_t> cand_;
};

}  // namespace inferd
