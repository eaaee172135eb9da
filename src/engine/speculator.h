// Speculative decoding in the engine: before each step, the proposer (n-gram, a draft model:
// draft_proposer.h, or an EAGLE-3 head: eagle3_proposer.h) guesses up to k tokens after each
// decoding sequence (Sequence::drafts), as the policy allows; the scheduler gives such a sequence 1
// + k tokens, the forward computes logits for all of them, and the sampler samples each row from
// the target distribution as if the tokens before it had been sampled (row j: the output position
// num_output + j, its Philox draw, its penalties counting drafts 0..j-1). The engine then takes the
// sampled tokens in order while each equals the draft it follows: for a proposer whose draft is a
// deterministic function of the context (n-gram: q is one-hot) this is exactly rejection sampling
// (accept draft x with probability p(x) = min(1, p(x) / q(x)); on a rejection the row's token is
// drawn from p restricted to tokens other than x, which is norm(max(0, p - q))), so outputs keep
// the target distribution, and a seeded request gives the tokens it gives without speculation. A
// draft model's sampled drafts (q not one-hot) carry q to the sampler, which applies the general
// rule (accept x with min(1, p(x) / q(x)), else draw from norm(max(0, p - q))); the engine's
// accept-while-equal loop is the same. The KV of rejected drafts is dropped
// (KvCacheManager::truncate).
//
// Policy (docs/speculative.md): no drafts in a step where more than disable_by_batch_size
// sequences decode; a sequence whose verification accepted nothing pauses for 1, 2, 4 ... 64
// steps (reset by an accepted draft); while the engine's recent verifications accept fewer than
// 0.25 drafts on average, only every 32nd step proposes (probes). Structured outputs: drafts are
// cut at the first token the grammar refuses; row j's bitmask is the grammar's after drafts 0..j-1
// (the matcher advances and rolls back while the masks are filled); the grammar then advances by
// the tokens taken.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/draft_proposer.h"
#include "engine/eagle3_proposer.h"
#include "engine/request_state.h"
#include "engine/sequence.h"
#include "inferd/engine.h"

namespace inferd {

class Speculator {
 public:
  // `vocab`: the target's vocabulary size (a draft model's must match; Error otherwise);
  // `aux_width`: the width of the target's hidden states an EAGLE-3 head fuses (its fc input
  // must match; Error otherwise).
  Speculator(const SpeculativeConfig& config, int32_t max_model_len, int32_t vocab,
             int32_t aux_width = 0);
  ~Speculator();

  bool enabled() const { return config_.enabled(); }
  // EAGLE-3: after each step, the target's states of its rows (ModelExecutor::aux_hidden_states).
  bool wants_hidden_states() const { return eagle_ != nullptr; }
  void take_hidden_states(std::span<const ScheduledSeq> scheduled, const ForwardBatch& fb,
                          std::span<const float> states) {
    if (eagle_) eagle_->take_hidden_states(scheduled, fb, states);
  }

  // Clears every running sequence's drafts, then proposes for those that decode this step (their
  // last token is the only one not computed) as the policy allows.
  void propose(std::span<Sequence* const> running);

  // After the step verified `num_drafts` drafts of `seq`, the first `matched` of which equal the
  // target's tokens: counts them and updates seq's backoff.
  void record(Sequence& seq, int32_t num_drafts, int32_t matched);

  void fill_stats(EngineStats& s) const;

  // Sleep mode: a draft model sleeps and wakes with the target (DraftProposer::sleep).
  void sleep(int level) {
    if (draft_) draft_->sleep(level);
  }
  void wake_up() {
    if (draft_) draft_->wake_up();
  }

 private:
  static void check_against_grammar(const RequestState& rs, SeqOutputState& so,
                                    std::vector<int32_t>& drafts);

  // The drafts of one sequence that decodes (n-gram at once, a draft model's collected in
  // draft_items_ for one batched proposal).
  void propose_for(Sequence& q, int32_t k);

  SpeculativeConfig config_;
  int32_t max_model_len_;
  std::unique_ptr<DraftProposer> draft_;   // method draft_model
  std::unique_ptr<Eagle3Proposer> eagle_;  // method eagle3
  std::vector<DraftProposer::Item> draft_items_;
  int64_t num_drafts_ = 0, num_draft_tokens_ = 0, num_accepted_ = 0;
  std::array<int64_t, kMaxSpeculativeTokens> per_pos_{};
  double accepted_avg_ = 1.0;  // recent drafts accepted per verification (starts hopeful)
  int64_t steps_ = 0;          // steps while that average is low (every 32nd proposes)
};

}  // namespace inferd
