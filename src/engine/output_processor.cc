// What the engine makes of sampled tokens: deltas, stops, text, finished requests, delivery.
#include "engine/output_processor.h"

#include <algorithm>

#include "core/logging.h"

namespace inferd {

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t tok) {
  return std::find(ids.begin(), ids.end(), tok) != ids.end();
}

}  // namespace

void OutputProcessor::process_token(Sequence& seq, SampledToken& sampled) {
  RequestState& rs = *seq.request;
  SeqOutputState& so = rs.out_of(seq);
  if (so.finished) return;  // its request failed earlier in this step

  const int32_t tok = sampled.token_id;
  if (so.matcher) {
    if (std::optional<std::string> error = structured_.accept_token(seq, tok)) {
      abort_request(rs, *error);
      return;
    }
  }
  seq.tokens.push_back(tok);
  ++generation_tokens_;
  SequenceDelta& d = delta_of(rs, seq.index);
  d.token_ids.push_back(tok);
  if (sampled.has_logprobs) d.logprobs.push_back(std::move(sampled.logprobs));

  std::optional<FinishReason> fin = stop_on_token(seq, d, tok);
  if (!fin) fin = stop_on_text(seq, d, tok);
  if (fin) finish_sequence(seq, *fin);
}

// EOS (unless ignore_eos) or a stop token id, once min_tokens are out: the sequence stops and the
// text held back is released (the stop token's own text only with include_stop_str_in_output).
std::optional<FinishReason> OutputProcessor::stop_on_token(Sequence& seq, SequenceDelta& d,
                                                           int32_t tok) {
  RequestState& rs = *seq.request;
  const SamplingParams& p = rs.req.params;
  SeqOutputState& so = rs.out_of(seq);
  const bool may_stop = seq.num_output() >= p.min_tokens;
  const bool is_eos = !p.ignore_eos && contains(rs.eos, tok);
  const bool is_stop_id = contains(p.stop_token_ids, tok);
  if (!may_stop || !(is_eos || is_stop_id)) return std::nullopt;
  if (!is_eos) d.stop_token_id = tok;
  std::string t;
  if (so.detok && !is_eos && p.include_stop_str_in_output) t = so.detok->push(tok);
  d.text += so.stop.flush();  // nothing can complete a stop string any more
  d.text += t;
  if (so.detok) d.text += so.detok->finish();
  return FinishReason::kStop;
}

// The token's text (stop strings searched once min_tokens are out), then the length limits:
// max_tokens and max_model_len end the sequence (a stop string completed by the final text
// still counts as a stop).
std::optional<FinishReason> OutputProcessor::stop_on_text(Sequence& seq, SequenceDelta& d,
                                                          int32_t tok) {
  RequestState& rs = *seq.request;
  const SamplingParams& p = rs.req.params;
  SeqOutputState& so = rs.out_of(seq);
  const int32_t out_len = seq.num_output();
  const bool may_stop = out_len >= p.min_tokens;
  if (so.detok) {
    const std::string t = so.detok->push(tok);
    if (!may_stop) {
      d.text += t;
    } else if (auto m = so.stop.push(t, d.text)) {
      d.stop_string = p.stop[*m];
      return FinishReason::kStop;
    }
  }
  if (out_len < rs.max_tokens && seq.num_tokens() < max_model_len_) return std::nullopt;
  if (auto m = finish_text(seq, d, may_stop)) {
    d.stop_string = p.stop[*m];
    return FinishReason::kStop;
  }
  return FinishReason::kLength;
}

std::optional<size_t> OutputProcessor::finish_text(Sequence& seq, SequenceDelta& d,
                                                   bool allow_stop_match) {
  SeqOutputState& so = seq.request->out_of(seq);
  if (!so.detok) return std::nullopt;
  const std::string tail = so.detok->finish();
  std::optional<size_t> m;
  if (allow_stop_match) {
    m = so.stop.push(tail, d.text);
  } else {
    d.text += tail;
  }
  if (!m) d.text += so.stop.flush();
  return m;
}

SequenceDelta& OutputProcessor::delta_of(RequestState& rs, int32_t index) {
  if (!rs.has_pending) touched_.push_back(&rs);
  return rs.delta(index);
}

void OutputProcessor::finish_sequence(Sequence& seq, FinishReason reason) {
  RequestState& rs = *seq.request;
  sched_.remove(&seq);
  rs.out_of(seq).finished = true;
  delta_of(rs, seq.index).finish_reason = reason;
  ++rs.num_finished;
}

// Ends every sequence of `rs` not finished yet with `reason`; true when there was one.
bool OutputProcessor::finish_unfinished(RequestState& rs, FinishReason reason) {
  bool any = false;
  for (int32_t i = 0; i < rs.n(); ++i) {
    SeqOutputState& so = rs.outs[size_t(i)];
    if (so.finished) continue;
    if (size_t(i) < rs.seqs.size()) sched_.remove(rs.seqs[size_t(i)].get());
    so.finished = true;
    delta_of(rs, i).finish_reason = reason;
    ++rs.num_finished;
    any = true;
  }
  return any;
}

void OutputProcessor::abort_request(RequestState& rs, const std::string& error) {
  if (finish_unfinished(rs, FinishReason::kAbort)) rs.aborted = true;
  if (!error.empty()) {
    delta_of(rs, 0);
    rs.pending.error = error;
  }
}

void OutputProcessor::finish_prompt_only(RequestState& rs) {
  finish_unfinished(rs, rs.is_embedding() ? FinishReason::kStop : FinishReason::kLength);
  if (rs.is_embedding()) rs.pending.embedding = pooled_embedding(rs);
}

void OutputProcessor::take_outputs(std::vector<ReadyOutput>& ready) {
  ready.clear();
  for (RequestState* rs : touched_) {
    RequestOutput out = std::move(rs->pending);
    rs->pending = RequestOutput();
    rs->has_pending = false;
    // Prompt logprobs go with the first output after the whole prompt was scored.
    if (rs->wants_prompt_lps() && rs->prompt_lps_done == int32_t(rs->prompt_lps.size())) {
      out.prompt_logprobs = std::move(rs->prompt_lps);
      rs->prompt_lps_sent = true;
      if (!rs->seqs.empty()) rs->seqs[0]->reuse_prefix = true;
    }
    out.num_cached_tokens = rs->seqs.empty() ? 0 : rs->seqs[0]->num_cached_tokens;
    out.finished = rs->num_finished == rs->n();
    ready.push_back({rs, std::move(out)});
  }
  touched_.clear();
}

void OutputProcessor::deliver(std::vector<ReadyOutput>& ready) {
  for (ReadyOutput& r : ready) {
    try {
      if (r.request->callback) r.request->callback(std::move(r.output));
    } catch (const std::exception& e) {
      LOG_ERROR("output callback of request {} threw: {}", r.request->id, e.what());
    }
  }
}

}  // namespace inferd
