// The reference sampler (backend/sampling.h) and the builder of per-row logit edits. Every value
// that decides a token comes from sampling_math.h, so the CUDA sampler gives the same tokens from
// the same logits. This file is compiled with -ffp-contract=off (see backend/CMakeLists.txt).
//
// Cost per row: O(vocab) for the edits, the probabilities and the draw (by id, over the whole
// row: dropped tokens have p = 0); top_k adds an nth_element over the candidates, top_p a
// selection by halving. One row of 128256 normal(0, 2.5) logits, one core of the 2-core AMD EPYC
// dev machine (2026-12-01): ~1.0 ms plain, ~2.3 ms with top_k 50, ~4.5 ms with top_p 0.95 (the
// engine's old CpuSampler: 0.8, 1.9 and 26 ms).
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

// FMA and SSE4.1 make exp_neg's fma and rint single instructions instead of library calls (2x on
// the whole row); the results are the same, both being exactly rounded.
#if defined(__x86_64__) && defined(__GNUC__)
#define INFERD_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define INFERD_FMA_CLONES
#endif

// p_i = exp((l_i - max) / T), 0 where min_p drops the token.
INFERD_FMA_CLONES void fill_probs(const float* l, int32_t vocab, float mx, float inv_t, float min_p,
                                  float* prob) {
  for (int32_t i = 0; i < vocab; ++i) {
    const float p = sampling::prob_of(l[i], mx, inv_t);
    prob[i] = p < min_p ? 0.0f : p;
  }
}

// The smallest k such that the k most likely of `cand` (by p desc, id asc) have a mass of at
// least `target`, leaving them first in `cand`. Selection by halving (nth_element on the part
// still in question), so O(n) rather than a sort of the whole nucleus.
size_t nucleus_size(const std::vector<float>& prob, std::vector<int32_t>& cand, uint64_t target) {
  auto more_likely = [&](int32_t a, int32_t b) {
    return prob[size_t(a)] != prob[size_t(b)] ? prob[size_t(a)] > prob[size_t(b)] : a < b;
  };
  auto mass = [&](int32_t t) { return sampling::mass_of(prob[size_t(t)]); };
  const auto at = [&](size_t i) { return cand.begin() + std::ptrdiff_t(i); };
  // cand[0, lo) are the lo most likely tokens, of mass acc < target; the answer is in (lo, hi].
  size_t lo = 0, hi = cand.size();
  uint64_t acc = 0;
  while (hi - lo > 64) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(at(lo), at(mid), at(hi), more_likely);
    uint64_t m = 0;
    for (size_t i = lo; i <= mid; ++i) m += mass(cand[i]);
    if (acc + m >= target) {
      hi = mid + 1;
    } else {
      acc += m;
      lo = mid + 1;
    }
  }
  std::sort(at(lo), at(hi), more_likely);
  for (size_t i = lo; i < hi; ++i) {
    acc += mass(cand[i]);
    if (acc >= target) return i + 1;
  }
  return hi;
}

// top_k, then top_p: sets p to 0 for the tokens they drop.
void filter(std::vector<float>& prob, std::vector<int32_t>& cand, const SamplingRow& row) {
  cand.clear();
  for (size_t i = 0; i < prob.size(); ++i) {
    if (prob[i] > 0.0f) cand.push_back(int32_t(i));
  }
  if (row.top_k > 0 && size_t(row.top_k) < cand.size()) {
    // Keep every token at least as likely as the k-th (ties kept).
    const auto kth_at = cand.begin() + (row.top_k - 1);
    std::nth_element(cand.begin(), kth_at, cand.end(),
                     [&](int32_t a, int32_t b) { return prob[size_t(a)] > prob[size_t(b)]; });
    const float kth = prob[size_t(*kth_at)];
    size_t w = 0;
    for (int32_t c : cand) {
      if (prob[size_t(c)] >= kth) {
        cand[w++] = c;
      } else {
        prob[size_t(c)] = 0.0f;
      }
    }
    cand.resize(w);
  }
  if (row.top_p < 1.0f) {
    uint64_t total = 0;
    for (int32_t c : cand) total += sampling::mass_of(prob[size_t(c)]);
    const size_t keep = nucleus_size(prob, cand, sampling::top_p_target(row.top_p, total));
    for (size_t i = keep; i < cand.size(); ++i) prob[size_t(cand[i])] = 0.0f;
  }
}

// The first token, by id, whose running mass exceeds floor(u * total); the last kept one if
// rounding leaves none.
int32_t draw(const std::vector<float>& prob, const SamplingRow& row) {
  uint64_t total = 0;
  for (float p : prob) total += sampling::mass_of(p);
  const uint64_t r = sampling::draw_threshold(sampling::uniform53(row.seed, row.counter), total);
  uint64_t acc = 0;
  for (size_t i = 0; i < prob.size(); ++i) {
    acc += sampling::mass_of(prob[i]);
    if (acc > r) return int32_t(i);
  }
  for (size_t i = prob.size(); i-- > 0;) {
    if (prob[i] > 0.0f) return int32_t(i);
  }
  INFERD_CHECK(false, "min_p {} leaves no token", row.min_p);
  return 0;
}

// Rejection sampling against a sampled draft x ~ q (Leviathan et al. 2023, Chen et al. 2023):
// x with probability min(1, p(x) / q(x)), else a draw from norm(max(0, p - q)). p is the row's
// kept masses normalised; the residual is summed in integer units (sampling::residual_mass), in
// id order, as the CUDA sampler does.
int32_t draw_with_draft(const std::vector<float>& prob, const SamplingRow& row, const float* q) {
  uint64_t total = 0;
  for (float p : prob) total += sampling::mass_of(p);
  if (total == 0) return draw(prob, row);
  const double inv = sampling::ddiv_rn(1.0, double(total));
  const size_t x = size_t(row.draft_token);
  const double u1 = sampling::uniform53(row.seed, row.counter, sampling::kStreamAccept);
  if (sampling::accept_draft(u1, q[x], sampling::prob_of_mass(sampling::mass_of(prob[x]), inv)))
    return row.draft_token;
  uint64_t residual = 0;
  for (size_t i = 0; i < prob.size(); ++i)
    residual += sampling::residual_mass(sampling::mass_of(prob[i]), inv, q[i]);
  if (residual == 0) return draw(prob, row);  // p <= q everywhere: p == q up to rounding
  const uint64_t r = sampling::draw_threshold(
      sampling::uniform53(row.seed, row.counter, sampling::kStreamToken), residual);
  uint64_t acc = 0;
  int32_t last = -1;
  for (size_t i = 0; i < prob.size(); ++i) {
    const uint64_t m = sampling::residual_mass(sampling::mass_of(prob[i]), inv, q[i]);
    if (m == 0) continue;
    acc += m;
    last = int32_t(i);
    if (acc > r) return last;
  }
  return last;
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
    float* l = logits + r * size_t(vocab);
    if (row.mask_row >= 0) {
      INFERD_CHECK(
          row.mask_row < batch.num_masks() && batch.mask_words == sampling::bitmask_words(vocab),
          "row {}: bitmask {} of {} ({} words a row for {} tokens)", r, row.mask_row,
          batch.num_masks(), batch.mask_words, vocab);
      const uint32_t* m = batch.masks.data() + size_t(row.mask_row) * size_t(batch.mask_words);
      for (int32_t t = 0; t < vocab; ++t) {
        if (!sampling::mask_allows(m, t)) l[t] = -INFINITY;
      }
    }
    const float* q = nullptr;
    if (row.draft_row >= 0) {
      INFERD_CHECK(row.draft_token >= 0 && row.draft_token < vocab &&
                       (size_t(row.draft_row) + 1) * size_t(vocab) <= batch.draft_probs.size(),
                   "row {}: draft token {} / distribution {} outside the batch's", r,
                   row.draft_token, row.draft_row);
      q = batch.draft_probs.data() + size_t(row.draft_row) * size_t(vocab);
    }
    sample_row(l, vocab, row, edits.subspan(size_t(row.edit_begin), size_t(row.edit_count)), q,
               out[r]);
  }
}

void ReferenceSampler::sample_row(float* l, int32_t vocab, const SamplingRow& row,
                                  std::span<const LogitEdit> edits, const float* draft_q,
                                  SampledToken& out) {
  const size_t V = size_t(vocab);
  const bool want_logprobs = row.num_logprobs >= 0;

  // 1. Logprobs come from the raw logits.
  if (want_logprobs) raw_.assign(l, l + V);
  if (row.score_token >= 0) {  // a scoring row: its token is given
    INFERD_CHECK(row.score_token < vocab, "scoring token {} outside [0, {})", row.score_token,
                 vocab);
    out.token_id = row.score_token;
    out.has_logprobs = want_logprobs;
    if (want_logprobs) fill_logprobs(row, vocab, row.score_token, out.logprobs);
    return;
  }

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
    prob_.resize(V);
    fill_probs(l, vocab, mx, 1.0f / row.temperature, row.min_p, prob_.data());
    if (row.top_k > 0 || row.top_p < 1.0f) filter(prob_, cand_, row);
    token = draft_q ? draw_with_draft(prob_, row, draft_q) : draw(prob_, row);
  }
  out.token_id = token;
  out.has_logprobs = want_logprobs;
  if (want_logprobs) fill_logprobs(row, vocab, token, out.logprobs);
}

// 4. Logprobs of the raw logits (log-softmax in double): `token`'s, its rank, the top ones.
void ReferenceSampler::fill_logprobs(const SamplingRow& row, int32_t vocab, int32_t token,
                                     SampleLogprobs& lp) {
  const size_t V = size_t(vocab);
  const float rmx = raw_[size_t(argmax(raw_.data(), vocab))];
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += std::exp(double(raw_[i] - rmx));
  const double lse = double(rmx) + std::log(sum);
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
      if (raw_[size_t(t)] == -INFINITY) break;  // masked by a grammar: no alternative
      lp.top.push_back({t, float(double(raw_[size_t(t)]) - lse)});
    }
  }
}

}  // namespace inferd
