// Continuous batching: each step takes the running sequences' pending tokens (one per decode, a
// chunk of a prompt being prefilled) and then admits waiting sequences, up to a token budget and
// a sequence cap. A prompt longer than the remaining budget is prefilled in chunks over several
// steps, mixed with everyone's decodes. When the KV pool runs out, the running sequence that is
// scheduled last (lowest priority, latest arrival) is preempted: its blocks are freed and it goes
// back to the waiting queue with its tokens, to be recomputed (prompt + generated so far) later.
//
// Fair chunking (SchedulerConfig::long_prefill_token_threshold > 0, vLLM's rule): a prompt with
// more than the threshold left is long and, while any other sequence has work, gets at most the
// threshold a step; at most max_long_partial_prefills long prompts get tokens in one step, and a
// prompt's chunk never takes the row of a decode scheduled after it. A long prompt arriving
// while others decode therefore costs each step at most `threshold` tokens, and TPOT holds.
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "engine/kv_cache_manager.h"
#include "engine/sequence.h"

namespace inferd {

struct SchedulerConfig {
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  bool enable_chunked_prefill = true;
  // Most LoRA adapters among the running sequences (the executor's slots); a waiting sequence
  // of another adapter waits until one of them has no running sequence left. 0: no adapters.
  int32_t max_loras = 0;
  // Fair chunking (see above; EngineConfig's fields of the same names). 0: off.
  int32_t long_prefill_token_threshold = 0;
  // > 1: at most this many prompts get tokens in one step. 1: no limit of its own.
  int32_t max_num_partial_prefills = 1;
  int32_t max_long_partial_prefills = 1;  // with a threshold: long prompts in one step
};

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t num_tokens = 0;  // tokens computed this step: [num_computed, num_computed + num_tokens)
  // Speculative decoding: of those, the last num_drafts are seq->drafts (the rest: the sequence's
  // last token), each with logits wanted.
  int32_t num_drafts = 0;
};

struct SchedulerCounters {
  int64_t preemptions = 0;
  int64_t prefix_cache_queries = 0;  // tokens looked up at admission
  int64_t prefix_cache_hits = 0;     // tokens found
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, KvCacheManager& kv);

  // Queues a sequence that holds no blocks (new, or a fork of a request with n > 1).
  void add_waiting(Sequence* seq);
  // Takes a sequence out of the scheduler (finished or aborted) and frees its blocks.
  void remove(Sequence* seq);

  // Plans one step into `out` (cleared first). A running sequence with drafts (speculative
  // decoding) gets its last token and as many of its drafts as the token budget leaves room for
  // (seq->drafts is cut to those). Sequences preempted in this step are appended to
  // `preempted`. Does not change num_computed of scheduled sequences (the caller advances it
  // after the forward pass).
  void schedule(std::vector<ScheduledSeq>& out, std::vector<Sequence*>* preempted = nullptr);

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  int32_t num_running() const { return int32_t(running_.size()); }
  int32_t num_waiting() const { return int32_t(waiting_.size()); }
  const SchedulerCounters& counters() const { return counters_; }
  const std::vector<Sequence*>& running() const { return running_; }

 private:
  struct Before {
    bool operator()(const Sequence* a, const Sequence* b) const { return sched_before(a, b); }
  };
  // 1. The running sequences, most important first, from `budget` (what they leave stays in it);
  // true when the pool ran out and sequences were preempted.
  bool schedule_running(std::vector<ScheduledSeq>& out, int32_t& budget,
                        std::vector<Sequence*>* preempted);
  // 2. Waiting sequences in order, while the budget and max_num_seqs allow.
  void admit_waiting(std::vector<ScheduledSeq>& out, int32_t budget);
  void preempt(Sequence* seq);
  void insert_running(Sequence* seq);
  // The LoRA adapters of the running sequences (running_adapters_), and whether a sequence of
  // adapter `id` may join them (config_.max_loras).
  void note_adapter(int32_t id);
  bool is_running_adapter(int32_t id) const;
  bool adapter_fits(int32_t id) const;
  // Fair chunking: caps `n` tokens of a prompt with `pending` tokens left; 0: not this step.
  // Counts it into this step's prompts (prefills_, long_prefills_).
  int32_t fair_chunk(int32_t pending, int32_t n);

  SchedulerConfig config_;
  KvCacheManager& kv_;
  std::vector<Sequence*> running_;  // in scheduling order
  std::set<Sequence*, Before> waiting_;
  std::vector<int32_t> prefix_scratch_;
  std::vector<int32_t> running_adapters_;
  SchedulerCounters counters_;
  bool fair_ = false;          // fair chunking on (a threshold, or partial prefills > 1)
  bool others_ = false;        // this step: more than one sequence has work
  int32_t prefills_ = 0;       // this step: prompts given tokens
  int32_t long_prefills_ = 0;  // of those, long ones
};

}  // namespace inferd
