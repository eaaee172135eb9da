// The EAGLE-3 proposer of speculative decoding (vLLM's "eagle3" method; Li et al. 2025, "EAGLE-3:
// Scaling up Inference Acceleration of Large Language Models via Training-Time Test"): a head of
// one decoder layer (model/models/eagle3.cc), run by its own executor with its own KV pool,
// guesses k tokens per sequence from the target's own hidden states.
//
// Feeding (as tools/train_spec_heads.py trains it): the target hands out, for every row it
// computes, the residual stream entering three of its layers (ModelExecutor::aux_hidden_states);
// the proposer keeps them per sequence (take_hidden_states, after each step). At position i the
// head's confirmed input is (embedding of token i + 1, fc(the three states of position i)): a
// proposal first catches the head's KV up over the positions the target computed since the last
// one (rows of width fused_width, the head applying fc), and the last of them gives the first
// draft; each later draft step feeds the previous draft's embedding and the head's own pre-norm
// output of the row before it (width hidden_size), one position further. Those draft positions are
// overwritten by the next catch-up, which runs over the accepted tokens with the target's states:
// the head's KV of a sequence keeps only confirmed positions (the longest prefix that agrees with
// the sequence), and rejected drafts cost nothing to roll back.
//
// Draft tokens are draft-vocabulary ids mapped to target ids (HeadInfo::draft_to_target). Greedy
// drafts take the argmax; sampled drafts (a non-greedy request without a grammar) are drawn from
// q = softmax(draft logits / temperature) over the draft vocabulary with the sequence's Philox key
// and the draft stream, and q goes to the sampler scattered over the target vocabulary (zero
// outside the draft vocabulary), where the rejection rule keeps the target distribution exactly.
//
// Positions the target did not compute (prefix-cache hits) have no states: the head reads zeros
// there (fewer accepted drafts, same outputs). States not yet consumed are bounded: all
// sequences together keep at most kMaxPendingBytes, each at least 64 and at most
// kMaxPendingStates positions (a sequence that does not speculate for long, or a long prompt on
// a wide target, loses its oldest ones the same way).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/forward_batch.h"
#include "engine/draft_proposer.h"
#include "engine/proposer_common.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "runner/executor.h"

namespace inferd {

class Eagle3Proposer {
 public:
  // Throws Error when the head does not fit the target: its target vocabulary or its fused width
  // (3 x the target's hidden size) differ from `target_vocab` / `target_aux_width`.
  Eagle3Proposer(std::shared_ptr<ModelExecutor> head, int32_t target_vocab,
                 int32_t target_aux_width);

  using Item = DraftProposer::Item;
  // After a target step: the states of every row of `scheduled` (fb.seqs[i] is scheduled[i]).
  void take_hidden_states(std::span<const ScheduledSeq> scheduled, const ForwardBatch& fb,
                          std::span<const float> states);
  // Fills each item's seq->drafts (and seq->draft_probs for sampled drafts: [drafts, vocab]).
  // `running`: every running sequence (the state of the others is freed).
  void propose(std::span<const Item> items, std::span<Sequence* const> running);

  // Frees the state of sequences not in `running` (finished, preempted).
  void forget_stopped(std::span<Sequence* const> running);

  static constexpr int32_t kMaxPendingStates = 4096;
  static constexpr int64_t kMaxPendingBytes = int64_t(1) << 30;

  int32_t num_free_blocks() const { return kv_.num_free_blocks(); }  // tests
  int32_t num_states() const { return int32_t(states_.size()); }     // tests

 private:
  // The head's KV (position i was fed tokens[i] = token i + 1) and the target's states.
  struct State : ProposerKv::Seq {
    int32_t aux_begin = 0;  // the target's states of positions aux_begin.. (rows of aux_width_)
    std::vector<float> aux;
  };
  struct Work {
    Sequence* seq = nullptr;
    State* state = nullptr;
    int32_t k = 0;
    float temperature = 0.0f;
    int32_t nc = 0;  // positions confirmed: the sequence's tokens but the last
    bool active = true;
    std::vector<float> hidden;  // the head's output at the last draft's row
  };
  // A round of catch-up rows (the target's states through fc; false: none pending) and a round
  // of draft steps (the head's own outputs; false: no item wants more drafts).
  bool run_catch_up(std::vector<Work>& work);
  bool run_draft_step(std::vector<Work>& work);
  void run(std::vector<Work>& work);  // forward, then each logit row's draft and hidden
  void take_draft(Work& w, const float* logits);

  std::shared_ptr<ModelExecutor> head_;
  int32_t target_vocab_ = 0, draft_vocab_ = 0, hidden_ = 0, aux_width_ = 0;
  int32_t max_len_ = 0, max_tokens_ = 0;
  std::vector<int32_t> d2t_;
  ProposerKv kv_;
  std::unordered_map<int64_t, State> states_;  // by Sequence::id
  // Per round (kept between calls).
  ForwardBatch batch_;
  std::vector<size_t> logit_work_;
  std::vector<float> logits_;
  std::vector<double> probs_;
};

}  // namespace inferd
