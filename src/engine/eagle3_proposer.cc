// The EAGLE-3 proposer (eagle3_proposer.h).
#include "engine/eagle3_proposer.h"

#include <algorithm>
#include <cmath>

#include "backend/sampling_math.h"
#include "core/error.h"

namespace inferd {

namespace {
const ModelExecutor& checked(const std::shared_ptr<ModelExecutor>& head) {
  if (!head) fail("--speculative-config: method eagle3 needs the EAGLE-3 head's executor");
  return *head;
}
}  // namespace

Eagle3Proposer::Eagle3Proposer(std::shared_ptr<ModelExecutor> head, int32_t target_vocab,
                               int32_t target_aux_width)
    : head_(std::move(head)), kv_(checked(head_)) {
  ModelExecutor::HeadInfo h = head_->head_info();
  if (h.fused_width <= 0)
    fail("--speculative-config: method eagle3: the model given is not an EAGLE-3 head");
  if (h.target_vocab != target_vocab)
    fail(
        "--speculative-config: the EAGLE-3 head was trained for a vocabulary of {} tokens, the "
        "target's has {}",
        h.target_vocab, target_vocab);
  if (target_aux_width <= 0)
    fail(
        "--speculative-config: method eagle3: the target hands out no hidden states (its runner "
        "needs RunnerOptions::aux_hidden_layers)");
  if (h.fused_width != target_aux_width)
    fail(
        "--speculative-config: the EAGLE-3 head fuses {} hidden values a token (fc's input), the "
        "target hands out {}: the head was trained for a target of another hidden size",
        h.fused_width, target_aux_width);
  target_vocab_ = target_vocab;
  draft_vocab_ = head_->vocab_size();
  hidden_ = head_->hidden_size();
  aux_width_ = target_aux_width;
  d2t_ = std::move(h.draft_to_target);
  INFERD_CHECK(int32_t(d2t_.size()) == draft_vocab_, "d2t has {} entries, the draft vocabulary {}",
               d2t_.size(), draft_vocab_);
  for (int32_t t : d2t_)
    INFERD_CHECK(t >= 0 && t < target_vocab_, "d2t target id {} outside {}", t, target_vocab_);
  max_len_ = head_->max_model_len();
  max_tokens_ = std::max(1, head_->max_num_batched_tokens());
}

void Eagle3Proposer::take_hidden_states(std::span<const ScheduledSeq> scheduled,
                                        const ForwardBatch& fb, std::span<const float> states) {
  const size_t W = size_t(aux_width_);
  INFERD_CHECK(states.size() == size_t(fb.num_tokens()) * W,
               "the target handed out {} state values for {} rows of {}", states.size(),
               fb.num_tokens(), W);
  for (size_t i = 0; i < scheduled.size() && i < fb.seqs.size(); ++i)
    states_.try_emplace(scheduled[i].seq->id);
  // Each sequence keeps at most its share of kMaxPendingBytes (64..kMaxPendingStates rows).
  const int64_t share =
      kMaxPendingBytes / int64_t(W * sizeof(float)) / std::max<int64_t>(1, int64_t(states_.size()));
  const int32_t cap = int32_t(std::clamp<int64_t>(share, 64, kMaxPendingStates));
  for (size_t i = 0; i < scheduled.size() && i < fb.seqs.size(); ++i) {
    const SeqBatchInfo& info = fb.seqs[i];
    State& st = states_[scheduled[i].seq->id];
    const int32_t p0 = info.kv_len - info.q_len;
    if (st.aux.empty() || p0 < st.aux_begin) {
      st.aux.clear();
      st.aux_begin = p0;
    } else {
      // Rows from p0 on are replaced (rejected drafts' states); a gap (positions the target did
      // not compute: a prefix-cache hit) reads zeros.
      st.aux.resize(size_t(p0 - st.aux_begin) * W, 0.0f);
    }
    const float* src = states.data() + size_t(info.q_start) * W;
    st.aux.insert(st.aux.end(), src, src + size_t(info.q_len) * W);
    const int32_t rows = int32_t(st.aux.size() / W);
    if (rows > cap) {
      const int32_t drop = rows - cap;
      st.aux.erase(st.aux.begin(), st.aux.begin() + std::ptrdiff_t(size_t(drop) * W));
      st.aux_begin += drop;
    }
  }
}

void Eagle3Proposer::propose(std::span<const Item> items, std::span<Sequence* const> running) {
  forget_stopped(running);
  std::vector<Work> work;
  work.reserve(items.size());
  for (const Item& it : items) {
    Sequence& q = *it.seq;
    q.drafts.clear();
    q.draft_probs.clear();
    const int32_t nc = q.num_tokens() - 1;
    if (nc < 1) continue;
    State& st = states_[q.id];
    // Keep the longest prefix of the head's KV that agrees with the sequence (position i was fed
    // token i + 1), leaving at least the last confirmed position to run: its row gives the first
    // draft.
    const size_t limit = std::min(st.tokens.size(), size_t(nc - 1));
    size_t same = 0;
    while (same < limit && st.tokens[same] == q.tokens[same + 1]) ++same;
    kv_.truncate(st, int32_t(same));
    Work w;
    w.seq = &q;
    w.state = &st;
    w.k = it.k;
    w.temperature = it.temperature;
    w.nc = nc;
    work.push_back(std::move(w));
  }
  while (run_catch_up(work)) {
  }
  while (run_draft_step(work)) {
  }
  // The states of positions the head's KV now holds are consumed.
  const size_t W = size_t(aux_width_);
  for (Work& w : work) {
    State& st = *w.state;
    const int32_t used =
        std::min(int32_t(st.tokens.size()) - st.aux_begin, int32_t(st.aux.size() / W));
    if (used <= 0) continue;
    st.aux.erase(st.aux.begin(), st.aux.begin() + std::ptrdiff_t(size_t(used) * W));
    st.aux_begin += used;
  }
}

void Eagle3Proposer::forget_stopped(std::span<Sequence* const> running) {
  kv_.forget_stopped(states_, running);
}

bool Eagle3Proposer::run_catch_up(std::vector<Work>& work) {
  batch_.clear();
  logit_work_.clear();
  batch_.hidden_input_width = aux_width_;
  const size_t W = size_t(aux_width_);
  int32_t budget = max_tokens_;
  for (size_t i = 0; i < work.size() && budget > 0; ++i) {
    Work& w = work[i];
    State& st = *w.state;
    const int32_t have = int32_t(st.tokens.size());
    const int32_t pending = w.nc - have;
    if (!w.active || pending <= 0) continue;
    const int32_t chunk = std::min(pending, budget);
    if (have + chunk > max_len_ || !kv_.reserve(st, have + chunk)) {
      w.active = false;  // the head's context or pool is full: no drafts
      continue;
    }
    ProposerKv::add_rows(batch_, st, have, chunk);
    const int32_t rows = int32_t(st.aux.size() / W);
    for (int32_t p = have; p < have + chunk; ++p) {
      const int32_t t = w.seq->tokens[size_t(p + 1)];
      batch_.token_ids.push_back(t);
      batch_.positions.push_back(p);
      st.tokens.push_back(t);
      const int32_t r = p - st.aux_begin;
      if (r >= 0 && r < rows) {
        const float* src = st.aux.data() + size_t(r) * W;
        batch_.hidden_inputs.insert(batch_.hidden_inputs.end(), src, src + W);
      } else {
        batch_.hidden_inputs.resize(batch_.hidden_inputs.size() + W, 0.0f);
      }
    }
    if (chunk == pending) {
      batch_.logit_rows.push_back(batch_.num_tokens() - 1);
      logit_work_.push_back(i);
    }
    budget -= chunk;
  }
  if (batch_.token_ids.empty()) return false;
  run(work);
  return true;
}

bool Eagle3Proposer::run_draft_step(std::vector<Work>& work) {
  batch_.clear();
  logit_work_.clear();
  batch_.hidden_input_width = hidden_;
  int32_t budget = max_tokens_;
  for (size_t i = 0; i < work.size() && budget > 0; ++i) {
    Work& w = work[i];
    const int32_t j = int32_t(w.seq->drafts.size());
    if (!w.active || j == 0 || j >= w.k || w.hidden.empty()) continue;
    // Draft j at position nc - 1 + j, fed the head's output of the row before it.
    const int32_t pos = w.nc - 1 + j;
    if (pos + 1 > max_len_ || !kv_.reserve(*w.state, pos + 1)) {
      w.active = false;
      continue;
    }
    ProposerKv::add_rows(batch_, *w.state, pos, 1);
    batch_.token_ids.push_back(w.seq->drafts.back());
    batch_.positions.push_back(pos);
    batch_.hidden_inputs.insert(batch_.hidden_inputs.end(), w.hidden.begin(), w.hidden.end());
    batch_.logit_rows.push_back(batch_.num_tokens() - 1);
    logit_work_.push_back(i);
    --budget;
  }
  if (batch_.token_ids.empty()) return false;
  run(work);
  return true;
}

void Eagle3Proposer::run(std::vector<Work>& work) {
  const size_t R = logit_work_.size(), Vd = size_t(draft_vocab_), H = size_t(hidden_);
  logits_.resize(std::max<size_t>(1, R * Vd));
  head_->forward(batch_, logits_.data());
  const std::span<const float> out = head_->recurrent_hidden();
  INFERD_CHECK(out.size() == R * H, "the head handed out {} output values for {} rows of {}",
               out.size(), R, H);
  for (size_t r = 0; r < R; ++r) {
    Work& w = work[logit_work_[r]];
    w.hidden.assign(out.begin() + std::ptrdiff_t(r * H), out.begin() + std::ptrdiff_t((r + 1) * H));
    take_draft(w, logits_.data() + r * Vd);
  }
}

void Eagle3Proposer::take_draft(Work& w, const float* l) {
  Sequence& q = *w.seq;
  const int32_t Vd = draft_vocab_, V = target_vocab_;
  int32_t best = 0;
  for (int32_t i = 1; i < Vd; ++i)
    if (l[i] > l[best]) best = i;
  const bool sampled = w.temperature >= sampling::kGreedyTemperature;
  if (!sampled || !std::isfinite(l[best])) {
    q.drafts.push_back(d2t_[size_t(best)]);
    if (sampled) {  // a degenerate row of a sampled sequence: q one-hot
      q.draft_probs.resize(q.draft_probs.size() + size_t(V), 0.0f);
      q.draft_probs[q.draft_probs.size() - size_t(V) + size_t(d2t_[size_t(best)])] = 1.0f;
    }
    return;
  }
  // q = softmax(l / T) over the draft vocabulary, in double, scattered to the target ids as
  // floats (zero elsewhere); drawn by target id from the stored values.
  probs_.resize(size_t(Vd));
  double sum = 0;
  for (int32_t i = 0; i < Vd; ++i) {
    probs_[size_t(i)] = std::exp((double(l[i]) - double(l[best])) / double(w.temperature));
    sum += probs_[size_t(i)];
  }
  const size_t base = q.draft_probs.size();
  if (base == 0) q.draft_probs.reserve(size_t(w.k) * size_t(V));
  q.draft_probs.resize(base + size_t(V), 0.0f);
  float* qp = q.draft_probs.data() + base;
  for (int32_t i = 0; i < Vd; ++i) qp[d2t_[size_t(i)]] += float(probs_[size_t(i)] / sum);
  q.drafts.push_back(draw_draft(q, std::span<const float>(qp, size_t(V)), d2t_[size_t(best)]));
}

}  // namespace inferd
