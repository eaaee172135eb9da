// The input of one engine step: the flat ForwardBatch of the scheduled sequences (their tokens,
// positions, block tables, the rows whose logits are wanted, the rows pooled for embeddings), the
// sequences those rows sample for, and the SamplingBatch (per-row parameters, logit edits for
// bans, bias and penalties, grammar mask rows) with room for the sampled tokens. Buffers are kept
// between steps.
//
// Logit rows: first one per sampling sequence (rows()), then the scoring rows of prompt logprobs
// (score_rows(): prompt position p's row gives the logprob of prompt token p + 1).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/scheduler.h"
#include "runner/executor.h"

namespace inferd {

class InputBatch {
 public:
  explicit InputBatch(int32_t vocab_size)
      : edit_builder_(vocab_size), edit_builder_vocab_(vocab_size) {}

  // M-RoPE models: steps with images carry ForwardBatch::mrope_positions.
  void set_mrope(bool on) { mrope_ = on; }
  // Fills the forward batch from this step's scheduled sequences and lists the rows that sample
  // (a sequence whose last token is computed this step); clears the sampling batch.
  void build_forward(std::span<const ScheduledSeq> scheduled);
  // Adds one sampling row for each of rows() (after their grammar mask rows were assigned) and
  // sizes sampled() to match.
  void build_sampling();

  struct PromptRow {
    Sequence* seq = nullptr;
    int32_t pos = 0;  // prompt position (scoring rows) / first position pooled (pool spans)
    int32_t row = 0;  // its row in the forward batch
  };

  const ForwardBatch& forward() const { return forward_; }
  SamplingBatch& sampling() { return sampling_; }
  std::span<Sequence* const> rows() const { return rows_; }
  // Speculative decoding: a sequence with drafts has 1 + drafts consecutive rows; the j-th of
  // them (draft_index j) samples the token after its drafts[0, j).
  int32_t draft_index(size_t row) const { return draft_index_[row]; }
  // Scoring rows; their results follow the rows()' in sampled().
  std::span<const PromptRow> score_rows() const { return score_rows_; }
  // The sequence of each of forward().pool_spans.
  std::span<const PromptRow> pool_rows() const { return pool_rows_; }
  std::vector<SampledToken>& sampled() { return sampled_; }

 private:
  void add_sampling_row(const Sequence& q, int32_t draft_index);
  // The last row verifies q's sampled draft draft_index: its draft and q (SamplingRow::draft_row).
  void add_draft_distribution(const Sequence& q, int32_t draft_index);
  // ForwardBatch::mrope_positions of the scheduled rows, when some sequence has images.
  void add_mrope_rows(std::span<const ScheduledSeq> scheduled);
  // Scoring rows and pool spans of sequence q's prompt positions in this step.
  void add_prompt_rows(Sequence* q, const SeqBatchInfo& info);

  ForwardBatch forward_;
  bool mrope_ = false;
  std::vector<Sequence*> rows_;  // the sequence each logit row samples for
  std::vector<int32_t> draft_index_;
  std::vector<int32_t> output_scratch_;  // a row's output so far, its drafts included
  std::vector<PromptRow> score_rows_;
  std::vector<PromptRow> pool_rows_;
  SamplingBatch sampling_;
  LogitEditBuilder edit_builder_;
  int32_t edit_builder_vocab_ = 0;
  std::vector<SampledToken> sampled_;
};

}  // namespace inferd
