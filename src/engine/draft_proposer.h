// The draft-model proposer of speculative decoding (vLLM's "draft_model" method): a second, smaller
// model sharing the target's vocabulary, run by its own executor (its own KV pool and, on a GPU,
// its own workspace and graphs), guesses k tokens per sequence autoregressively, batched across
// sequences: one forward catches the draft's KV up with the sequence's tokens (the tokens accepted
// since the last proposal, or the whole context the first time, in chunks of the draft's batch
// size) and gives the first draft, then k - 1 one-token forwards give the rest.
//
// The draft's KV of a sequence is kept between steps: the tokens it holds are remembered, and
// each proposal keeps the longest prefix that still agrees with the sequence (rejected drafts are
// dropped, their blocks freed). Sequences that left the running set (finished, preempted) lose
// their draft KV; one that comes back catches up from scratch. The draft's pool has a block
// allocator of its own here (no prefix caching); a sequence for which no block is free gets no
// drafts in that step.
//
// Greedy drafts take the draft's argmax (q one-hot: the engine's accept-while-equal rule is exact):
// a round whose drafts are all greedy runs through the draft's execute() with argmax rows, and once
// every item is down to one pending token the remaining rounds run as one greedy chain
// (ModelExecutor::execute_greedy_chain: on a GPU the decode graph replays back to back, each
// round's argmax fed to the next on the device, and the token ids come back once); a round with a
// sampled draft runs forward() and brings its logit rows to the host.
// Sampled drafts (a non-greedy request without a grammar) are drawn from q = softmax(draft logits
// / temperature) with the sequence's Philox key, the draft's output position as counter and the
// draft stream (sampling::kStreamDraft), so a seeded request stays reproducible; q goes with the
// draft to the sampler's rejection rule (SamplingRow::draft_row).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/forward_batch.h"
#include "engine/proposer_common.h"
#include "engine/sequence.h"
#include "runner/executor.h"

namespace inferd {

class DraftProposer {
 public:
  // Throws Error when the draft's vocabulary is not the target's size.
  DraftProposer(std::shared_ptr<ModelExecutor> draft, int32_t target_vocab);

  struct Item {
    Sequence* seq = nullptr;
    int32_t k = 0;             // drafts wanted (>= 1)
    float temperature = 0.0f;  // < sampling::kGreedyTemperature: greedy drafts
  };
  // Fills each item's seq->drafts (and seq->draft_probs for sampled drafts: [drafts, vocab]).
  // `running`: every running sequence (the draft KV of the others is freed).
  void propose(std::span<const Item> items, std::span<Sequence* const> running);

  // Sleep mode: the draft model sleeps with the target (at the same level) and wakes with it.
  // Its KV goes with its memory, so every sequence's draft state is forgotten first (nothing runs
  // while the engine sleeps; drafting starts over from each prompt after the wake).
  void sleep(int level);
  void wake_up();

  int32_t num_free_blocks() const { return kv_.num_free_blocks(); }  // tests
  int32_t num_states() const { return int32_t(states_.size()); }     // tests

 private:
  // The draft's KV of one sequence: the tokens it holds (positions 0..), their blocks.
  using State = ProposerKv::Seq;
  struct Work {
    Sequence* seq = nullptr;
    State* state = nullptr;
    int32_t k = 0;
    float temperature = 0.0f;
    bool active = true;
  };
  // One forward over the active items' pending tokens (at most the draft's batch size); returns
  // false when nothing was pending.
  bool run_round(std::vector<Work>& work);
  // After run_round built a greedy decode round (one token and one logit row an item): runs the
  // items' remaining drafts as one greedy chain of the draft executor (on a GPU, on the device
  // without coming back between rounds); false (nothing run) when fewer than two rounds are
  // wanted or the draft's pool cannot hold them.
  bool run_chain(std::vector<Work>& work);
  void take_draft(Work& w, const float* logits);

  std::shared_ptr<ModelExecutor> draft_;
  int32_t vocab_ = 0, max_len_ = 0, max_tokens_ = 0;
  ProposerKv kv_;
  std::unordered_map<int64_t, State> states_;  // by Sequence::id
  // Per round (kept between calls).
  ForwardBatch batch_;
  std::vector<size_t> logit_work_;  // the work item of each logit row
  std::vector<float> logits_;
  SamplingBatch sampling_;  // greedy rounds: argmax rows
  std::vector<SampledToken> sampled_;
  std::vector<int32_t> chain_;  // run_chain's argmaxes, [rounds, items]
  std::vector<double> probs_;
};

}  // namespace inferd
