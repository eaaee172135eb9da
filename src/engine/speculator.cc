// Speculative decoding in the engine: proposals, policy, counters (speculator.h).
#include "engine/speculator.h"

#include <algorithm>

#include "engine/ngram_proposer.h"
#include "engine/request_state.h"

namespace inferd {

namespace {
constexpr int32_t kMaxBackoffSteps = 64;
// Engine-wide: an exponential average (weight 1/32 a verification) of the drafts accepted per
// verification; below kMinAcceptedPerDraft, only every kProbeEvery-th step proposes.
constexpr double kAcceptedWeight = 1.0 / 32;
constexpr double kMinAcceptedPerDraft = 0.25;
constexpr int64_t kProbeEvery = 32;
}  // namespace

Speculator::Speculator(const SpeculativeConfig& config, int32_t max_model_len, int32_t vocab,
                       int32_t aux_width)
    : config_(config), max_model_len_(max_model_len) {
  if (config_.enabled() && config_.method == SpeculativeConfig::Method::kDraftModel)
    draft_ = std::make_unique<DraftProposer>(config_.draft_executor, vocab);
  if (config_.enabled() && config_.method == SpeculativeConfig::Method::kEagle3)
    eagle_ = std::make_unique<Eagle3Proposer>(config_.draft_executor, vocab, aux_width);
  config_.draft_executor = nullptr;  // draft_ / eagle_ holds it
}

Speculator::~Speculator() = default;

void Speculator::propose(std::span<Sequence* const> running) {
  int32_t decoding = 0;
  draft_items_.clear();
  for (Sequence* q : running) {
    q->drafts.clear();
    q->draft_probs.clear();
    decoding += q->num_tokens() - q->num_computed == 1 ? 1 : 0;
  }
  if (!enabled()) return;
  if (eagle_) eagle_->forget_stopped(running);
  if (config_.disable_by_batch_size > 0 && decoding > config_.disable_by_batch_size) return;
  if (accepted_avg_ < kMinAcceptedPerDraft && steps_++ % kProbeEvery != 0) return;
  for (Sequence* q : running) {
    if (q->num_tokens() - q->num_computed != 1) continue;  // prefilling or recomputing
    RequestState& rs = *q->request;
    SeqOutputState& so = rs.out_of(*q);
    if (rs.prompt_only() || so.finished) continue;
    // Structured outputs: only inside the grammar, past min_tokens (whose EOS ban depends on
    // the grammar's state).
    if (so.matcher && (!so.grammar_on || so.grammar_done ||
                       so.begin_pos < rs.req.params.structured_outputs->begin_tokens.size() ||
                       q->num_output() < rs.req.params.min_tokens))
      continue;
    if (q->spec_skip > 0) {
      --q->spec_skip;
      continue;
    }
    // The tokens this sequence may still produce; the last of a step is never a draft.
    const int32_t left =
        std::min(rs.max_tokens - q->num_output(), max_model_len_ - q->num_tokens());
    const int32_t k = std::min(config_.num_speculative_tokens, left - 1);
    if (k > 0) propose_for(*q, k);
  }
  if (draft_items_.empty()) return;
  if (draft_) {
    draft_->propose(draft_items_, running);
  } else {
    eagle_->propose(draft_items_, running);
  }
  for (const DraftProposer::Item& it : draft_items_) {
    RequestState& rs = *it.seq->request;
    SeqOutputState& so = rs.out_of(*it.seq);
    if (so.matcher) check_against_grammar(rs, so, it.seq->drafts);
  }
}

void Speculator::propose_for(Sequence& q, int32_t k) {
  RequestState& rs = *q.request;
  SeqOutputState& so = rs.out_of(q);
  if (draft_ || eagle_) {
    // Structured outputs draft greedily: cutting a sampled draft where the grammar refuses it
    // would bias the rows after it; a one-hot draft may be cut anywhere.
    const float t = so.matcher ? 0.0f : rs.req.params.temperature;
    draft_items_.push_back({&q, k, t});
    return;
  }
  propose_ngram(q.tokens, config_.prompt_lookup_min, config_.prompt_lookup_max, k, q.drafts);
  if (so.matcher) check_against_grammar(rs, so, q.drafts);
}

// Drafts are cut before the first token the grammar refuses (or an EOS id): the rows after it
// would have no mask to sample with. The matcher is left as it was.
void Speculator::check_against_grammar(const RequestState& rs, SeqOutputState& so,
                                       std::vector<int32_t>& drafts) {
  int32_t ok = 0;
  for (int32_t t : drafts) {
    if (std::find(rs.eos.begin(), rs.eos.end(), t) != rs.eos.end()) break;
    if (!so.matcher->accept_token(t)) break;
    ++ok;
  }
  so.matcher->rollback(ok);
  drafts.resize(size_t(ok));
  // (Grammar rows' drafts are greedy: no draft_probs to cut.)
}

void Speculator::record(Sequence& seq, int32_t num_drafts, int32_t matched) {
  if (num_drafts <= 0) return;
  ++num_drafts_;
  accepted_avg_ += kAcceptedWeight * (double(matched) - accepted_avg_);
  num_draft_tokens_ += num_drafts;
  num_accepted_ += matched;
  for (int32_t j = 0; j < matched && j < kMaxSpeculativeTokens; ++j) ++per_pos_[size_t(j)];
  if (matched > 0) {
    seq.spec_backoff = 0;
  } else {
    seq.spec_backoff = std::min(kMaxBackoffSteps, std::max(1, seq.spec_backoff * 2));
    seq.spec_skip = seq.spec_backoff;
  }
}

void Speculator::fill_stats(EngineStats& s) const {
  s.spec_num_speculative_tokens = enabled() ? config_.num_speculative_tokens : 0;
  s.spec_num_drafts = num_drafts_;
  s.spec_num_draft_tokens = num_draft_tokens_;
  s.spec_num_accepted_tokens = num_accepted_;
  s.spec_accepted_per_pos = per_pos_;
}

}  // namespace inferd
