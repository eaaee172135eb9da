// One generated sequence (a request with n > 1 has n of them) as the scheduler and the KV cache
// see it: its tokens (prompt + generated), how many of them are in the KV cache, its blocks.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/block_pool.h"
#include "inferd/engine.h"

namespace inferd {

struct RequestState;  // the engine's per-request state

enum class SeqStatus { kPending, kWaiting, kRunning, kFinished };

struct Sequence {
  int64_t id = 0;
  RequestState* request = nullptr;
  int32_t index = 0;  // 0..n-1 within its request

  // Scheduling order, smallest first: (priority, arrival, request number, index).
  int32_t priority = 0;
  int64_t arrival_ns = 0;
  uint64_t request_number = 0;

  std::vector<int32_t> tokens;  // prompt + generated; the last one is not in the KV cache yet
                                // once generation started
  int32_t prompt_len = 0;
  int32_t num_computed = 0;             // tokens whose KV is in the cache (a prefix of `tokens`)
  std::vector<int32_t> blocks;          // block table
  std::vector<BlockHash> block_hashes;  // hashes of the full blocks of `tokens`
  int32_t num_registered_blocks = 0;    // leading blocks already offered to the prefix cache
  SeqStatus status = SeqStatus::kPending;
  const Sequence* share_from = nullptr;  // n > 1 without prefix caching: the first sequence
  bool admitted_once = false;
  // False while the prompt's every position must be computed (prompt logprobs, mean or CLS
  // pooling): admission then reads nothing from the prefix cache.
  bool reuse_prefix = true;
  int32_t num_cached_tokens = 0;  // prefix-cache hit at first admission

  uint64_t sample_key = 0;  // Philox key of its draws (with the output position as counter)
  // The LoRA adapter it runs with (GenerateRequest::lora_adapter_id; -1: the base model). Its
  // prefix-cache hashes start from a root of their own: KV computed with one adapter is never
  // reused by another (or by the base).
  int32_t adapter_id = -1;
  // The prompt's images (GenerateRequest::images, held by its request): their tokens take the
  // images' embeddings, a prefill chunk never ends inside one, and their hashes are folded into
  // the prefix-cache hashes of the blocks they are in.
  std::span<const ImageInput> images;

  // Speculative decoding: this step's draft tokens (guesses of the tokens after `tokens`,
  // verified in the step's forward), and the policy's backoff: steps left without drafts, and
  // the length of the next pause after a verification that accepted nothing.
  std::vector<int32_t> drafts;
  // Sampled drafts (a draft model with a non-greedy request): the distribution each draft was
  // drawn from, [drafts.size(), vocab] row-major; empty: the drafts are one-hot guesses.
  std::vector<float> draft_probs;
  int32_t spec_skip = 0;
  int32_t spec_backoff = 0;

  int32_t num_tokens() const { return int32_t(tokens.size()); }
  int32_t num_output() const { return num_tokens() - prompt_len; }
};

// True when `a` is scheduled before (and preempted after) `b`.
inline bool sched_before(const Sequence* a, const Sequence* b) {
  if (a->priority != b->priority) return a->priority < b->priority;
  if (a->arrival_ns != b->arrival_ns) return a->arrival_ns < b->arrival_ns;
  if (a->request_number != b->request_number) return a->request_number < b->request_number;
  if (a->index != b->index) return a->index < b->index;
  return a->id < b->id;
}

}  // namespace inferd
