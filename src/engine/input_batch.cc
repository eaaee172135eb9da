// The input of one engine step: the forward batch and the sampling rows of the scheduled sequences.
#include "engine/input_batch.h"

#include <algorithm>

#include "engine/image_spans.h"
#include "engine/request_state.h"

namespace inferd {

void InputBatch::build_forward(std::span<const ScheduledSeq> scheduled) {
  forward_.clear();
  rows_.clear();
  draft_index_.clear();
  score_rows_.clear();
  pool_rows_.clear();
  for (const ScheduledSeq& s : scheduled) {
    Sequence* q = s.seq;
    SeqBatchInfo info;
    info.q_start = forward_.num_tokens();
    info.q_len = s.num_tokens;
    info.kv_len = q->num_computed + s.num_tokens;
    info.block_table_offset = int32_t(forward_.block_tables.size());
    info.num_blocks = int32_t(q->blocks.size());
    info.adapter_id = q->adapter_id;
    forward_.block_tables.insert(forward_.block_tables.end(), q->blocks.begin(), q->blocks.end());
    const int32_t from_seq = s.num_tokens - s.num_drafts;
    for (int32_t j = 0; j < s.num_tokens; ++j) {
      forward_.token_ids.push_back(j < from_seq ? q->tokens[size_t(q->num_computed + j)]
                                                : q->drafts[size_t(j - from_seq)]);
      forward_.positions.push_back(q->num_computed + j);
    }
    if (info.kv_len == q->num_tokens() + s.num_drafts && !q->request->prompt_only()) {
      for (int32_t j = 0; j <= s.num_drafts; ++j) {
        forward_.logit_rows.push_back(info.q_start + info.q_len - 1 - s.num_drafts + j);
        rows_.push_back(q);
        draft_index_.push_back(j);
      }
    }
    if (!q->images.empty() && q->num_computed < q->prompt_len)
      add_image_spans(forward_, q->images, info.q_start, q->num_computed,
                      q->num_computed + from_seq);
    add_prompt_rows(q, info);
    forward_.seqs.push_back(info);
  }
  if (mrope_) add_mrope_rows(scheduled);
  // Scoring rows after the sampling rows (which the grammar masks index).
  for (const PromptRow& r : score_rows_) forward_.logit_rows.push_back(r.row);
  sampling_.clear();
}

void InputBatch::add_mrope_rows(std::span<const ScheduledSeq> scheduled) {
  if (forward_.embedding_spans.empty()) {  // no image in this step's rows
    bool any = false;
    for (const ScheduledSeq& s : scheduled) any |= !s.seq->images.empty();
    if (!any) return;  // (rope positions are the positions)
  }
  std::vector<int32_t> t, h, w;
  for (const ScheduledSeq& s : scheduled) {
    const Sequence& q = *s.seq;
    add_mrope_positions(t, h, w, q.images, q.num_computed, q.num_computed + s.num_tokens);
  }
  forward_.mrope_positions = std::move(t);
  forward_.mrope_positions.insert(forward_.mrope_positions.end(), h.begin(), h.end());
  forward_.mrope_positions.insert(forward_.mrope_positions.end(), w.begin(), w.end());
}

void InputBatch::add_prompt_rows(Sequence* q, const SeqBatchInfo& info) {
  RequestState& rs = *q->request;
  const int32_t first = q->num_computed, end = first + info.q_len;
  const int32_t plen = q->prompt_len;
  if (q->index == 0 && rs.wants_prompt_lps()) {
    // Position p scores prompt token p + 1; positions already scored (before a preemption) skip.
    for (int32_t p = std::max(first, rs.prompt_lps_done); p < std::min(end, plen - 1); ++p)
      score_rows_.push_back({q, p, info.q_start + (p - first)});
  }
  if (!rs.is_embedding()) return;
  int32_t lo = std::max(first, rs.pool_upto), hi = std::min(end, plen);
  if (rs.pooling.type == PoolingType::kLast) lo = std::max(lo, plen - 1);
  if (rs.pooling.type == PoolingType::kCls) hi = std::min(hi, 1);
  if (lo >= hi) return;
  forward_.pool_spans.push_back({info.q_start + (lo - first), hi - lo});
  pool_rows_.push_back({q, lo, info.q_start + (lo - first)});
}

void InputBatch::build_sampling() {
  for (size_t i = 0; i < rows_.size(); ++i) {
    add_sampling_row(*rows_[i], draft_index_[i]);
    // A row followed by its sequence's next draft row verifies a draft; a sampled one carries q.
    const Sequence& q = *rows_[i];
    const bool verifies = i + 1 < rows_.size() && draft_index_[i + 1] == draft_index_[i] + 1;
    if (verifies && !q.draft_probs.empty()) add_draft_distribution(q, draft_index_[i]);
  }
  for (const PromptRow& r : score_rows_) {
    SamplingRow row;
    row.num_logprobs = *r.seq->request->req.params.prompt_logprobs;
    row.score_token = r.seq->tokens[size_t(r.pos) + 1];
    sampling_.rows.push_back(row);
  }
  sampled_.resize(rows_.size() + score_rows_.size());
}

void InputBatch::add_draft_distribution(const Sequence& q, int32_t draft_index) {
  const size_t V = size_t(edit_builder_vocab_);
  SamplingRow& row = sampling_.rows.back();
  row.draft_token = q.drafts[size_t(draft_index)];
  row.draft_row = int32_t(sampling_.draft_probs.size() / V);
  const auto from = q.draft_probs.begin() + std::ptrdiff_t(size_t(draft_index) * V);
  sampling_.draft_probs.insert(sampling_.draft_probs.end(), from, from + std::ptrdiff_t(V));
}

void InputBatch::add_sampling_row(const Sequence& q, int32_t draft_index) {
  const RequestState& rs = *q.request;
  const SamplingParams& p = rs.req.params;
  SamplingRow row;
  row.temperature = p.temperature;
  row.top_p = p.top_p;
  row.top_k = p.top_k;
  row.min_p = p.min_p;
  row.repetition_penalty = p.repetition_penalty;
  row.presence_penalty = p.presence_penalty;
  row.frequency_penalty = p.frequency_penalty;
  row.num_logprobs = p.logprobs ? *p.logprobs : -1;
  row.seed = q.sample_key;
  const int32_t out_len = q.num_output() + draft_index;  // the output position being sampled
  row.counter = uint64_t(out_len);
  const SeqOutputState& so = rs.outs[size_t(q.index)];
  row.mask_row = so.mask_row >= 0 ? so.mask_row + draft_index : -1;
  const std::span<const int32_t> prompt(q.tokens.data(), size_t(q.prompt_len));
  std::span<const int32_t> output(q.tokens.data() + q.prompt_len, size_t(q.num_output()));
  if (draft_index > 0) {  // penalties count the drafts before this row as output
    output_scratch_.assign(output.begin(), output.end());
    output_scratch_.insert(output_scratch_.end(), q.drafts.begin(), q.drafts.begin() + draft_index);
    output = output_scratch_;
  }
  // A grammar that is complete decides that the output ends: min_tokens does not ban EOS then
  // (the grammar would allow nothing else).
  const bool grammar_complete = so.mask_row >= 0 && so.matcher->can_terminate();
  const std::span<const int32_t> banned = out_len < p.min_tokens && !grammar_complete
                                              ? std::span<const int32_t>(rs.banned)
                                              : std::span<const int32_t>();
  edit_builder_.append(row, banned, p.logit_bias, prompt, output, sampling_.edits);
  sampling_.rows.push_back(row);
}

}  // namespace inferd
