// The reference sampler (backend/sampling.h) and the builder of per-row logit edits. Every value
// that decides a token comes from sampling_math.h, so the CUDA sampler gives the same tokens from
// the same logits. This file is compiled with -ffp-contract=off (see backend/CMakeLists.txt).
//
// Cost per row: O(vocab) for the edits, the probabilities and the draw; top_k adds an
// nth_element over the candidates, top_p a partial sort that grows only until the nucleus is
// found (64, 256, 1024, ... tokens), then a sort of the kept tokens by id.
#include <algorithm>
#include <cmath>

#include "backend/sampling.h"
#include "core/error.h"

namespace inferd {

namespace {

// Index of the largest value; the lowest index on ties.
int32_t argmax(const float* x, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

bool has_effect(const LogitEdit& e) {
  return e.flags != 0 || e.bias != 0.0f || e.count > 0;
}

}  // namespace

// ---- LogitEditBuilder --------------------------------------------------------------------------

void LogitEditBuilder::resize(int32_t vocab) {
  index_.assign(size_t(std::max(vocab, 0)), -1);
  touched_.clear();
}

LogitEdit& LogitEditBuilder::edit_of(int32_t token, std::vector<LogitEdit>& edits) {
  INFERD_CHECK(token >= 0 && size_t(token) < index_.size(), "token id {} outside [0, {})", token,
               index_.size());
  int32_t& at = index_[size_t(token)];
  if (at < 0) {
    at = int32_t(edits.size());
    touched_.push_back(token);
    LogitEdit e;
    e.token = token;
    edits.push_back(e);
  }
  return edits[size_t(at)];
}

void LogitEditBuilder::append(SamplingRow& row, std::span<const int32_t> banned,
                              std::span<const std::pair<int32_t, float>> bias,
                              std::span<const int32_t> prompt, std::span<const int32_t> output,
                              std::vector<LogitEdit>& edits) {
  begin_ = int32_t(edits.size());
  touched_.clear();
  for (int32_t t : banned) edit_of(t, edits).flags |= sampling::kEditBanned;
  for (const auto& [t, b] : bias) {
    LogitEdit& e = edit_of(t, edits);
    e.bias = e.bias + b;  // in order, from 0.0f
  }
  const bool repetition = row.repetition_penalty != 1.0f;
  const bool counted = row.frequency_penalty != 0.0f || row.presence_penalty != 0.0f;
  if (repetition || counted) {
    for (int32_t t : output) {
      LogitEdit& e = edit_of(t, edits);
      if (repetition) e.flags |= sampling::kEditSeen;
      if (counted) ++e.count;
    }
  }
  if (repetition) {
    for (int32_t t : prompt) edit_of(t, edits).flags |= sampling::kEditSeen;
  }
  // Drop what changes nothing (a bias that summed to zero), keeping the order of first mention.
  size_t w = size_t(begin_);
  for (size_t i = size_t(begin_); i < edits.size(); ++i) {
    if (has_effect(edits[i])) edits[w++] = edits[i];
  }
  edits.resize(w);
  for (int32_t t : touched_) index_[size_t(t)] = -1;
  touched_.clear();
  row.edit_begin = begin_;
  row.edit_count = int32_t(w) - begin_;
}

// ---- ReferenceSampler --------------------------------------------------------------------------

void ReferenceSampler::sample(float* logits, int32_t vocab, const SamplingBatch& batch,
                              std::span<SampledToken> out) {
  INFERD_CHECK(batch.rows.size() == out.size(), "sampling rows {} != outputs {}", batch.rows.size(),
               out.size());
  INFERD_CHECK(vocab > 0, "vocabulary of {} tokens", vocab);
  const std::span<const LogitEdit> edits(batch.edits);
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const SamplingRow& row = batch.rows[r];
    INFERD_CHECK(row.edit_begin >= 0 && row.edit_count >= 0 &&
                     size_t(row.edit_begin) + size_t(row.edit_count) <= edits.size(),
                 "row {}: edits [{}, +{}) outside the batch's {}", r, row.edit_begin,
                 row.edit_count, edits.size());
    sample_row(logits + r * size_t(vocab), vocab, row,
               edits.subspan(size_t(row.edit_begin), size_t(row.edit_count)), out[r]);
  }
}

void ReferenceSampler::sample_row(float* l, int32_t vocab, const SamplingRow& row,
                                  std::span<const LogitEdit> edits, SampledToken& out) {
  const size_t V = size_t(vocab);
  const bool want_logprobs = row.num_logprobs >= 0;

  // 1. Logprobs come from the raw logits.
  if (want_logprobs) raw_.assign(l, l + V);

  // 2. Edits: ban, bias, penalties.
  for (const LogitEdit& e : edits) {
    INFERD_CHECK(e.token >= 0 && e.token < vocab, "edit of token {} outside [0, {})", e.token,
                 vocab);
    l[e.token] = sampling::apply_edit(l[e.token], e, row);
  }

  // 3. Choose.
  int32_t token = argmax(l, vocab);
  const float mx = l[token];
  // Greedy, or nothing to draw from: every logit is -inf (or the maximum is +inf or NaN, which no
  // probability can be formed from).
  if (!sampling::is_greedy(row) && std::isfinite(mx)) {
    const float inv_t = 1.0f / row.temperature;
    prob_.resize(V);
    cand_.clear();
    for (size_t i = 0; i < V; ++i) {
      float p = sampling::prob_of(l[i], mx, inv_t);
      if (p < row.min_p) p = 0.0f;
      prob_[i] = p;
      if (p > 0.0f) cand_.push_back(int32_t(i));
    }
    auto more_likely = [&](int32_t a, int32_t b) {
      return prob_[size_t(a)] != prob_[size_t(b)] ? prob_[size_t(a)] > prob_[size_t(b)] : a < b;
    };
    bool by_id = true;  // cand_ is in ascending id order
    if (row.top_k > 0 && size_t(row.top_k) < cand_.size()) {
      // Keep every token at least as likely as the k-th (ties kept).
      std::nth_element(cand_.begin(), cand_.begin() + (row.top_k - 1), cand_.end(), more_likely);
      const float kth = prob_[size_t(cand_[size_t(row.top_k - 1)])];
      size_t w = 0;
      for (int32_t c : cand_) {
        if (prob_[size_t(c)] >= kth) cand_[w++] = c;
      }
      cand_.resize(w);
      by_id = false;
    }
    if (row.top_p < 1.0f) {
      uint64_t total = 0;
      for (int32_t c : cand_) total += sampling::mass_of(prob_[size_t(c)]);
      const uint64_t target = sampling::top_p_target(row.top_p, total);
      // Shortest most-likely-first prefix reaching the target (at least one token), sorting only
      // as far as needed.
      size_t sorted = 0, keep = cand_.size();
      uint64_t acc = 0;
      size_t m = std::min<size_t>(64, cand_.size());
      bool done = false;
      while (!done) {
        std::partial_sort(cand_.begin() + std::ptrdiff_t(sorted), cand_.begin() + std::ptrdiff_t(m),
                          cand_.end(), more_likely);
        for (; sorted < m; ++sorted) {
          acc += sampling::mass_of(prob_[size_t(cand_[sorted])]);
          if (acc >= target) {
            keep = sorted + 1;
            done = true;
            break;
          }
        }
        if (m == cand_.size()) break;
        m = std::min(cand_.size(), m * 4);
      }
      cand_.resize(keep);
      by_id = false;
    }
    if (!by_id) std::sort(cand_.begin(), cand_.end());
    INFERD_CHECK(!cand_.empty(), "min_p {} leaves no token", row.min_p);
    // The draw: the first kept token, by id, whose running mass exceeds the threshold.
    uint64_t total = 0;
    for (int32_t c : cand_) total += sampling::mass_of(prob_[size_t(c)]);
    const uint64_t r = sampling::draw_threshold(sampling::uniform53(row.seed, row.counter), total);
    token = cand_.back();
    uint64_t acc = 0;
    for (int32_t c : cand_) {
      acc += sampling::mass_of(prob_[size_t(c)]);
      if (acc > r) {
        token = c;
        break;
      }
    }
  }
  out.token_id = token;
  out.has_logprobs = want_logprobs;
  if (!want_logprobs) return;

  // 4. Logprobs of the raw logits (log-softmax in double).
  const float rmx = raw_[size_t(argmax(raw_.data(), vocab))];
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += std::exp(double(raw_[i] - rmx));
  const double lse = double(rmx) + std::log(sum);
  SampleLogprobs& lp = out.logprobs;
  const float chosen = raw_[size_t(token)];
  lp.token_id = token;
  lp.logprob = float(double(chosen) - lse);
  int32_t rank = 1;
  for (size_t i = 0; i < V; ++i) rank += raw_[i] > chosen ? 1 : 0;
  lp.rank = rank;
  lp.top.clear();
  const int32_t k = std::min(row.num_logprobs, vocab);
  if (k > 0) {
    cand_.resize(V);
    for (size_t i = 0; i < V; ++i) cand_[i] = int32_t(i);
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), [&](int32_t a, int32_t b) {
      return raw_[size_t(a)] != raw_[size_t(b)] ? raw_[size_t(a)] > raw_[size_t(b)] : a < b;
    });
    lp.top.reserve(size_t(k));
    for (int32_t i = 0; i < k; ++i) {
      const int32_t t = cand_[size_t(i)];
      lp.top.push_back({t, float(double(raw_[size_t(t)]) - lse)});
    }
  }
}

}  // namespace inferd
