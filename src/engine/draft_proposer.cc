// The draft-model proposer (draft_proposer.h).
#include "engine/draft_proposer.h"

#include <algorithm>
#include <cmath>

#include "backend/sampling_math.h"
#include "core/error.h"

namespace inferd {

namespace {
const ModelExecutor& checked(const std::shared_ptr<ModelExecutor>& draft) {
  if (!draft) fail("--speculative-config: method draft_model needs a draft model executor");
  return *draft;
}
}  // namespace

DraftProposer::DraftProposer(std::shared_ptr<ModelExecutor> draft, int32_t target_vocab)
    : draft_(std::move(draft)), kv_(checked(draft_)) {
  if (draft_->pools_only()) fail("--speculative-config: the draft model has no lm_head");
  vocab_ = draft_->vocab_size();
  if (vocab_ != target_vocab)
    fail(
        "--speculative-config: the draft model's vocabulary has {} tokens, the target's {}: a "
        "draft model must share the target's vocabulary",
        vocab_, target_vocab);
  max_len_ = draft_->max_model_len();
  max_tokens_ = std::max(1, draft_->max_num_batched_tokens());
}

void DraftProposer::propose(std::span<const Item> items, std::span<Sequence* const> running) {
  kv_.forget_stopped(states_, running);
  std::vector<Work> work;
  work.reserve(items.size());
  for (const Item& it : items) {
    Sequence& q = *it.seq;
    q.drafts.clear();
    q.draft_probs.clear();
    State& st = states_[q.id];
    // Keep the longest prefix of the draft's KV that agrees with the sequence, leaving at least
    // the last token to run (its logits give the first draft).
    const size_t limit = std::min(st.tokens.size(), q.tokens.size() - 1);
    size_t same = 0;
    while (same < limit && st.tokens[same] == q.tokens[same]) ++same;
    kv_.truncate(st, int32_t(same));
    work.push_back({&q, &st, it.k, it.temperature, true});
  }
  while (run_round(work)) {
  }
}

void DraftProposer::sleep(int level) {
  for (auto& [id, st] : states_) kv_.truncate(st, 0);
  states_.clear();
  if (draft_->sleep_level() == 0) draft_->sleep(level);
}

void DraftProposer::wake_up() {
  if (draft_->sleep_level() != 0) draft_->wake_up();
}

bool DraftProposer::run_round(std::vector<Work>& work) {
  batch_.clear();
  logit_work_.clear();
  int32_t budget = max_tokens_;
  for (size_t i = 0; i < work.size() && budget > 0; ++i) {
    Work& w = work[i];
    if (!w.active || int32_t(w.seq->drafts.size()) >= w.k) continue;
    const std::vector<int32_t>& toks = w.seq->tokens;
    const int32_t n = int32_t(toks.size());
    const int32_t have = int32_t(w.state->tokens.size());
    const int32_t pending = n + int32_t(w.seq->drafts.size()) - have;
    const int32_t chunk = std::min(pending, budget);
    if (have + chunk > max_len_ || !kv_.reserve(*w.state, have + chunk)) {
      w.active = false;  // the draft's context or pool is full: the drafts so far stay
      continue;
    }
    ProposerKv::add_rows(batch_, *w.state, have, chunk);
    for (int32_t p = have; p < have + chunk; ++p) {
      const int32_t t = p < n ? toks[size_t(p)] : w.seq->drafts[size_t(p - n)];
      batch_.token_ids.push_back(t);
      batch_.positions.push_back(p);
      w.state->tokens.push_back(t);
    }
    if (chunk == pending) {
      batch_.logit_rows.push_back(batch_.num_tokens() - 1);
      logit_work_.push_back(i);
    }
    budget -= chunk;
  }
  if (batch_.token_ids.empty()) return false;
  bool greedy = true;
  for (size_t i : logit_work_)
    greedy = greedy && work[i].temperature < sampling::kGreedyTemperature;
  if (greedy) {
    // A decode round (one pending token an item): the rest of the drafts in one greedy chain.
    if (batch_.num_tokens() == int32_t(logit_work_.size()) && run_chain(work)) return true;
    // Greedy drafts only: the draft's executor takes the argmax where the logits are (on a GPU,
    // one-token rounds replay its decode graphs; no logits come to the host).
    sampling_.clear();
    sampling_.rows.resize(logit_work_.size());  // temperature 0: argmax, lowest id on ties
    sampled_.resize(logit_work_.size());
    draft_->execute(batch_, sampling_, sampled_);
    for (size_t r = 0; r < logit_work_.size(); ++r)
      work[logit_work_[r]].seq->drafts.push_back(sampled_[r].token_id);
    return true;
  }
  logits_.resize(logit_work_.size() * size_t(vocab_));
  draft_->forward(batch_, logits_.data());
  for (size_t r = 0; r < logit_work_.size(); ++r)
    take_draft(work[logit_work_[r]], logits_.data() + r * size_t(vocab_));
  return true;
}

bool DraftProposer::run_chain(std::vector<Work>& work) {
  // As many rounds as the hungriest item wants, as far as every item's context allows. Each item's
  // pending token (already in its state's tokens) sits at position p0.
  int32_t rounds = 0;
  for (size_t i : logit_work_)
    rounds = std::max(rounds, work[i].k - int32_t(work[i].seq->drafts.size()));
  for (size_t i : logit_work_)
    rounds = std::min(rounds, max_len_ - (int32_t(work[i].state->tokens.size()) - 1));
  if (rounds < 2) return false;
  for (size_t i : logit_work_) {
    State& st = *work[i].state;
    if (!kv_.reserve(st, int32_t(st.tokens.size()) - 1 + rounds)) return false;  // round by round
  }
  // The batch again, each block table now reaching the chain's last position.
  batch_.clear();
  for (size_t i : logit_work_) {
    const State& st = *work[i].state;
    const int32_t p0 = int32_t(st.tokens.size()) - 1;
    ProposerKv::add_rows(batch_, st, p0, 1);
    batch_.token_ids.push_back(st.tokens.back());
    batch_.positions.push_back(p0);
    batch_.logit_rows.push_back(batch_.num_tokens() - 1);
  }
  const size_t S = logit_work_.size();
  chain_.resize(size_t(rounds) * S);
  draft_->execute_greedy_chain(batch_, rounds, chain_);
  // Round j's argmax is draft j of the item; it was round j + 1's input (its KV written) when that
  // round ran, as the round-by-round path keeps the inputs of the rounds an item wanted.
  for (size_t s = 0; s < S; ++s) {
    Work& w = work[logit_work_[s]];
    const int32_t want = w.k - int32_t(w.seq->drafts.size());
    for (int32_t j = 0; j < want && j < rounds; ++j) {
      const int32_t d = chain_[size_t(j) * S + s];
      w.seq->drafts.push_back(d);
      if (j + 1 < want && j + 1 < rounds) w.state->tokens.push_back(d);
    }
  }
  return true;
}

void DraftProposer::take_draft(Work& w, const float* l) {
  Sequence& q = *w.seq;
  const int32_t V = vocab_;
  int32_t best = 0;
  for (int32_t i = 1; i < V; ++i)
    if (l[i] > l[best]) best = i;
  const bool sampled = w.temperature >= sampling::kGreedyTemperature;
  if (!sampled || !std::isfinite(l[best])) {
    q.drafts.push_back(best);
    if (sampled) {  // a degenerate row of a sampled sequence: q one-hot
      q.draft_probs.resize(q.draft_probs.size() + size_t(V), 0.0f);
      q.draft_probs[q.draft_probs.size() - size_t(V) + size_t(best)] = 1.0f;
    }
    return;
  }
  // q = softmax(l / T), in double, stored as floats; drawn by id from the stored values.
  probs_.resize(size_t(V));
  double sum = 0;
  for (int32_t i = 0; i < V; ++i) {
    probs_[size_t(i)] = std::exp((double(l[i]) - double(l[best])) / double(w.temperature));
    sum += probs_[size_t(i)];
  }
  const size_t base = q.draft_probs.size();
  if (base == 0) q.draft_probs.reserve(size_t(w.k) * size_t(V));
  q.draft_probs.resize(base + size_t(V));
  float* qp = q.draft_probs.data() + base;
  for (int32_t i = 0; i < V; ++i) qp[i] = float(probs_[size_t(i)] / sum);
  q.drafts.push_back(draw_draft(q, std::span<const float>(qp, size_t(V)), best));
}

}  // namespace inferd
