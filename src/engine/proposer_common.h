// What the model-based proposers of speculative decoding (the draft model of draft_proposer.h, the
// EAGLE-3 head of eagle3_proposer.h) share: the KV pool of their own model, and the draw of a
// sampled draft from its distribution q.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/forward_batch.h"
#include "engine/sequence.h"
#include "runner/executor.h"

namespace inferd {

// The KV pool of a proposer's model: a free list over all of its executor's blocks (no prefix
// caching), and per sequence the tokens its KV holds (positions 0..) with their blocks. Each
// proposer keeps its states by Sequence::id; those of sequences that left the running set are
// freed.
class ProposerKv {
 public:
  // One sequence's KV in the proposer's pool.
  struct Seq {
    std::vector<int32_t> tokens;
    std::vector<int32_t> blocks;
  };

  explicit ProposerKv(const ModelExecutor& model);

  // Keeps the first `len` positions (tokens and the blocks they need), frees the other blocks.
  void truncate(Seq& s, int32_t len);
  // Blocks for `len` positions; false when the pool ran out (the blocks taken so far stay).
  bool reserve(Seq& s, int32_t len);
  // Appends to `batch` the rows first..first + count - 1 of `s` (its SeqBatchInfo and block
  // table; the caller adds the token ids and positions).
  static void add_rows(ForwardBatch& batch, const Seq& s, int32_t first, int32_t count);

  // Frees and erases the states (values deriving from Seq) of sequences not in `running`.
  template <class State>
  void forget_stopped(std::unordered_map<int64_t, State>& states,
                      std::span<Sequence* const> running) {
    if (states.empty()) return;
    size_t kept = 0;
    for (const Sequence* q : running) kept += states.count(q->id);
    if (kept == states.size()) return;
    std::vector<int64_t> ids;
    ids.reserve(running.size());
    for (const Sequence* q : running) ids.push_back(q->id);
    std::sort(ids.begin(), ids.end());
    for (auto it = states.begin(); it != states.end();) {
      if (std::binary_search(ids.begin(), ids.end(), it->first)) {
        ++it;
        continue;
      }
      truncate(it->second, 0);
      it = states.erase(it);
    }
  }

  int32_t num_free_blocks() const { return int32_t(free_.size()); }
  int32_t block_size() const { return block_size_; }

 private:
  int32_t block_size_ = 0;
  std::vector<int32_t> free_;
};

// A sampled draft of `q` drawn from its distribution qp (over the target's vocabulary; zero
// outside the draft's) with the sequence's Philox key, its next draft's output position as the
// counter and the draft stream (sampling::kStreamDraft): a seeded request stays reproducible.
// `fallback` when rounding leaves the draw past the last nonzero entry.
int32_t draw_draft(const Sequence& q, std::span<const float> qp, int32_t fallback);

}  // namespace inferd
