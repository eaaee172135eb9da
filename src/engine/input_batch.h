// The input of one engine step: the flat ForwardBatch of the scheduled sequences (their tokens,
// positions, block tables, the rows whose logits are wanted), the sequences those rows sample
// for, and the SamplingBatch (per-row parameters, logit edits for bans, bias and penalties, grammar
// mask rows) with room for the sampled tokens. Buffers are kept between steps.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/scheduler.h"
#include "runner/executor.h"

namespace inferd {

class InputBatch {
 public:
  explicit InputBatch(int32_t vocab_size) : edit_builder_(vocab_size) {}

  // Fills the forward batch from this step's scheduled sequences and lists the rows that sample
  // (a sequence whose last token is computed this step); clears the sampling batch.
  void build_forward(std::span<const ScheduledSeq> scheduled);
  // Adds one sampling row for each of rows() (after their grammar mask rows were assigned) and
  // sizes sampled() to match.
  void build_sampling();

  const ForwardBatch& forward() const { return forward_; }
  SamplingBatch& sampling() { return sampling_; }
  std::span<Sequence* const> rows() const { return rows_; }
  std::vector<SampledToken>& sampled() { return sampled_; }

 private:
  void add_sampling_row(const Sequence& q);

  ForwardBatch forward_;
  std::vector<Sequence*> rows_;  // the sequence each logit row samples for
  SamplingBatch sampling_;
  LogitEditBuilder edit_builder_;
  std::vector<SampledToken> sampled_;
};

}  // namespace inferd
