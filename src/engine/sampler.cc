#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace inferd {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Index of the largest value; the lowest index on ties.
int32_t argmax(const float* x, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}
}  // namespace

void CpuSampler::sample(float* logits, int32_t vocab, std::span<const SamplerRow> rows,
                        std::span<SampledToken> out) {
  INFERD_CHECK(rows.size() == out.size(), "sampler rows {} != outputs {}", rows.size(), out.size());
  if (int32_t(count_.size()) != vocab) {
    count_.assign(size_t(vocab), 0);
    seen_.assign(size_t(vocab), 0);
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    sample_row(logits + r * size_t(vocab), vocab, rows[r], out[r]);
  }
}

void CpuSampler::sample_row(float* l, int32_t vocab, const SamplerRow& row, SampledToken& out) {
  const SamplingParams& p = *row.params;
  const bool want_logprobs = p.logprobs.has_value();
  const size_t V = size_t(vocab);

  // 1. Raw logprobs: keep a copy of the model's logits.
  if (want_logprobs) raw_.assign(l, l + V);

  // 2. Masking before min_tokens.
  for (int32_t t : row.banned) l[t] = kNegInf;
  // 3. Logit bias.
  for (const auto& [t, b] : p.logit_bias) l[t] += b;
  // 4. Penalties.
  const bool rep = p.repetition_penalty != 1.0f;
  const bool freq_pres = p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
  if (rep || freq_pres) {
    touched_.clear();
    for (int32_t t : row.output) {
      if (count_[size_t(t)]++ == 0 && !seen_[size_t(t)]) touched_.push_back(t);
      seen_[size_t(t)] = 1;
    }
    if (rep) {
      for (int32_t t : row.prompt) {
        if (!seen_[size_t(t)]) {
          seen_[size_t(t)] = 1;
          touched_.push_back(t);
        }
      }
    }
    for (int32_t t : touched_) {
      float& x = l[t];
      if (rep && seen_[size_t(t)]) x = x > 0 ? x / p.repetition_penalty : x * p.repetition_penalty;
      const int32_t c = count_[size_t(t)];
      if (c > 0) x -= p.frequency_penalty * float(c) + p.presence_penalty;
      count_[size_t(t)] = 0;
      seen_[size_t(t)] = 0;
    }
  }

  // 5. Choose.
  int32_t token;
  if (p.greedy()) {
    token = argmax(l, vocab);
  } else {
    const float inv_t = 1.0f / p.temperature;
    const float mx = l[argmax(l, vocab)];
    INFERD_CHECK(mx > kNegInf, "every token is masked");
    prob_.resize(V);
    for (size_t i = 0; i < V; ++i) prob_[i] = std::exp((l[i] - mx) * inv_t);  // max is 1
    // min_p relative to the most likely token (whose unnormalized probability is 1).
    if (p.min_p > 0.0f) {
      for (size_t i = 0; i < V; ++i) {
        if (prob_[i] < p.min_p) prob_[i] = 0.0f;
      }
    }
    const bool top_k = p.top_k > 0 && p.top_k < vocab;
    const bool top_p = p.top_p < 1.0f;
    if (!top_k && !top_p) {
      double total = 0;
      for (size_t i = 0; i < V; ++i) total += prob_[i];
      const double u = row.rng->uniform() * total;
      double acc = 0;
      token = -1;
      for (size_t i = 0; i < V; ++i) {
        if (prob_[i] <= 0.0f) continue;
        token = int32_t(i);
        acc += prob_[i];
        if (u < acc) break;
      }
    } else {
      cand_.clear();
      for (size_t i = 0; i < V; ++i) {
        if (prob_[i] > 0.0f) cand_.push_back(int32_t(i));
      }
      auto more_likely = [&](int32_t a, int32_t b) {
        return prob_[size_t(a)] != prob_[size_t(b)] ? prob_[size_t(a)] > prob_[size_t(b)] : a < b;
      };
      if (top_k && int32_t(cand_.size()) > p.top_k) {
        // Keep every token at least as likely as the k-th (ties kept, as vLLM does).
        std::nth_element(cand_.begin(), cand_.begin() + (p.top_k - 1), cand_.end(), more_likely);
        const float kth = prob_[size_t(cand_[size_t(p.top_k - 1)])];
        size_t w = 0;
        for (int32_t c : cand_) {
          if (prob_[size_t(c)] >= kth) cand_[w++] = c;
        }
        cand_.resize(w);
      }
      if (top_p) {
        // Smallest most-likely prefix whose mass reaches top_p (at least one token); sorts the
        // candidates only as far as needed.
        double total = 0;
        for (int32_t c : cand_) total += prob_[size_t(c)];
        const double target = double(p.top_p) * total;
        size_t sorted = 0, keep = cand_.size();
        double acc = 0;
        size_t m = std::min<size_t>(64, cand_.size());
        while (true) {
          std::partial_sort(cand_.begin() + std::ptrdiff_t(sorted),
                            cand_.begin() + std::ptrdiff_t(m), cand_.end(), more_likely);
          bool done = false;
          for (; sorted < m; ++sorted) {
            acc += prob_[size_t(cand_[sorted])];
            if (acc >= target) {
              keep = sorted + 1;
              done = true;
              break;
            }
          }
          if (done || m == cand_.size()) break;
          m = std::min(cand_.size(), m * 4);
        }
        cand_.resize(keep);
      } else {
        std::sort(cand_.begin(), cand_.end(), more_likely);
      }
      double total = 0;
      for (int32_t c : cand_) total += prob_[size_t(c)];
      const double u = row.rng->uniform() * total;
      double acc = 0;
      token = cand_.back();
      for (int32_t c : cand_) {
        acc += prob_[size_t(c)];
        if (u < acc) {
          token = c;
          break;
        }
      }
    }
    INFERD_CHECK(token >= 0, "nothing to sample");
  }
  out.token_id = token;
  out.has_logprobs = want_logprobs;

  // Logprobs of the raw logits.
  if (want_logprobs) {
    const float mx = raw_[size_t(argmax(raw_.data(), vocab))];
    double sum = 0;
    for (size_t i = 0; i < V; ++i) sum += std::exp(double(raw_[i] - mx));
    const float lse = mx + float(std::log(sum));
    SampleLogprobs& lp = out.logprobs;
    lp.token_id = token;
    lp.logprob = raw_[size_t(token)] - lse;
    int32_t rank = 1;
    for (size_t i = 0; i < V; ++i) rank += raw_[i] > raw_[size_t(token)] ? 1 : 0;
    lp.rank = rank;
    lp.top.clear();
    const int32_t k = std::min(*p.logprobs, vocab);
    if (k > 0) {
      cand_.resize(V);
      for (size_t i = 0; i < V; ++i) cand_[i] = int32_t(i);
      std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), [&](int32_t a, int32_t b) {
        return raw_[size_t(a)] != raw_[size_t(b)] ? raw_[size_t(a)] > raw_[size_t(b)] : a < b;
      });
      lp.top.reserve(size_t(k));
      for (int32_t i = 0; i < k; ++i) {
        lp.top.push_back({cand_[size_t(i)], raw_[size_t(cand_[size_t(i)])] - lse});
      }
    }
  }
}

}  // namespace inferd
