// Sampling arithmetic shared bit for bit by the CPU reference sampler (backend/cpu/sampler.cc) and
// the CUDA sampler (backend/cuda/sampler.cu): the counter-based random generator, the exponential
// that turns logits into unnormalised probabilities, the fixed-point masses that top-p and the draw
// add up, and one logit's edits (ban, bias, penalties). Plain C++ that nvcc compiles too: no
// std::vector, no fmt.
//
// Why bit for bit: a seeded request must give the same tokens on the CPU and the GPU from the same
// logits, whatever batch it lands in. Every float operation below is one IEEE operation with a
// single rounding (products and sums spelled out so no compiler fuses them differently, fused
// multiply-adds spelled out as fma), and the sums that decide which token is drawn are integer sums
// of fixed-point masses, which do not depend on the order they are added in.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define INFERD_HD __host__ __device__ __forceinline__
#else
#define INFERD_HD inline
#endif

namespace inferd::sampling {

// Temperatures below this sample greedily (argmax, lowest id on ties).
constexpr float kGreedyTemperature = 1e-5f;
// Masses are probabilities (relative to the most likely token, whose probability is 1) in units of
// 2^-40: a vocabulary of 2^17 tokens sums to at most 2^57, exactly, in a uint64.
constexpr double kMassScale = 1099511627776.0;  // 2^40

// LogitEdit::flags
constexpr uint32_t kEditBanned = 1;  // masked to -inf (EOS and stop ids before min_tokens)
constexpr uint32_t kEditSeen = 2;    // in prompt or output: the repetition penalty applies

// One token's edits for one row; the tokens of a row's edits are distinct.
struct LogitEdit {
  int32_t token = 0;
  uint32_t flags = 0;
  float bias = 0.0f;  // logit_bias (the sum when a token is named twice)
  int32_t count = 0;  // occurrences in the output (frequency / presence penalties)
  float raw = 0.0f;   // scratch of the CUDA sampler (the raw logit while the row is sampled)
};

// What one logit row needs to be sampled. Plain data: uploaded as it is to the GPU.
struct SamplingRow {
  float temperature = 0.0f;  // < kGreedyTemperature: greedy
  float top_p = 1.0f;        // (0, 1]; 1: off
  int32_t top_k = 0;         // <= 0 or >= vocab: off
  float min_p = 0.0f;        // [0, 1]; 0: off
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t num_logprobs = -1;  // -1: none; else the sampled token's logprob and this many top ones
  uint64_t seed = 0;          // Philox key of the sequence
  uint64_t counter = 0;       // the output position being sampled
  int32_t edit_begin = 0;     // this row's edits: SamplingBatch::edits[edit_begin, +edit_count)
  int32_t edit_count = 0;
  // Structured outputs: row of the step's token bitmasks (SamplingBatch::masks) or -1. Tokens
  // whose bit is clear are -inf before anything else, logprobs included (as vLLM applies the
  // grammar bitmask to the logits before its sampler).
  int32_t mask_row = -1;
  // >= 0: a scoring row (prompt logprobs). Nothing is sampled: the row gives this token, with its
  // logprob, rank and num_logprobs alternatives from the raw logits (no mask, no edits).
  int32_t score_token = -1;
  // Speculative decoding with a sampled draft (issue 26): the row verifies draft token
  // `draft_token`, drawn from the draft distribution SamplingBatch::draft_probs row `draft_row`
  // (q). The row's token is then the draft with probability min(1, p / q), else a draw from
  // norm(max(0, p - q)) (docs/speculative.md). -1: no draft distribution (a one-hot draft: the
  // row samples from p as usual). Greedy rows ignore it. Both samplers apply it, with the same
  // arithmetic (residual_mass below).
  int32_t draft_token = -1;
  int32_t draft_row = -1;
};

// Philox streams of one output position (uniform53's `stream`): the token (and the residual draw
// of a rejected sampled draft), the acceptance test of a sampled draft, the draft's own draw.
constexpr uint32_t kStreamToken = 0;
constexpr uint32_t kStreamAccept = 1;
constexpr uint32_t kStreamDraft = 2;

// Structured-output bitmasks: words per row, and whether token t is allowed.
INFERD_HD int32_t bitmask_words(int32_t vocab) {
  return (vocab + 31) / 32;
}
INFERD_HD bool mask_allows(const uint32_t* words, int32_t t) {
  return ((words[t >> 5] >> (t & 31)) & 1u) != 0;
}

INFERD_HD bool is_greedy(const SamplingRow& r) {
  return r.temperature < kGreedyTemperature;
}

// ---- single-rounding float operations (no contraction on either compiler) -------------------
INFERD_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;  // the host files that use this are compiled with -ffp-contract=off
#endif
}
INFERD_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
INFERD_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
INFERD_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
INFERD_HD float fma_rn(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// e^x for x <= 0 (the scaled logit minus the row's maximum), identical on both sides: 2^(x log2 e)
// split into 2^n * 2^f with f in [-1/2, 1/2] and a degree-6 polynomial for 2^f (relative error
// ~1e-7 over [-80, 0]). f is reduced with log2 e in two parts (hi + lo, through fma): rounding
// x * log2 e to a float first would cost up to 4e-6 of relative error near -80. Returns 0 below
// e^-80 (and for -inf and NaN).
INFERD_HD float exp_neg(float x) {
  if (!(x > -80.0f)) return 0.0f;
  constexpr float kLog2eHi = 1.44269502162933349609375f;  // float(log2 e)
  constexpr float kLog2eLo = 1.925963033500011e-08f;      // log2 e - kLog2eHi
  const float t = mul_rn(x, kLog2eHi);
#ifdef __CUDA_ARCH__
  const float n = rintf(t);
#else
  const float n = std::rint(t);
#endif
  const float f = fma_rn(x, kLog2eLo, fma_rn(x, kLog2eHi, -n));  // x log2 e - n
  float p = 1.535336188319500e-4f;
  p = fma_rn(p, f, 1.339887440266574e-3f);
  p = fma_rn(p, f, 9.618437357674640e-3f);
  p = fma_rn(p, f, 5.550332471162809e-2f);
  p = fma_rn(p, f, 2.402264791363012e-1f);
  p = fma_rn(p, f, 6.931472028550421e-1f);
  p = fma_rn(p, f, 1.0f);
#ifdef __CUDA_ARCH__
  return ldexpf(p, int(n));
#else
  return std::ldexp(p, int(n));
#endif
}

// Unnormalised probability of a logit: exp((l - max) / T), so the most likely token has 1.
INFERD_HD float prob_of(float logit, float max_logit, float inv_temperature) {
  return exp_neg(mul_rn(sub_rn(logit, max_logit), inv_temperature));
}

// Fixed-point mass of a probability (exact: the product by 2^40 is exact, the conversion floors).
INFERD_HD uint64_t mass_of(float p) {
  return uint64_t(double(p) * kMassScale);
}

// The processed logit of an edited token: banned -> -inf, + bias, repetition penalty (divided
// when positive, multiplied otherwise), then frequency * count + presence subtracted.
INFERD_HD float apply_edit(float x, const LogitEdit& e, const SamplingRow& r) {
  if (e.flags & kEditBanned) x = -INFINITY;
  x = add_rn(x, e.bias);
  if (r.repetition_penalty != 1.0f && (e.flags & kEditSeen)) {
    x = x > 0.0f ? div_rn(x, r.repetition_penalty) : mul_rn(x, r.repetition_penalty);
  }
  if (e.count > 0) {
    x = sub_rn(x, fma_rn(r.frequency_penalty, float(e.count), r.presence_penalty));
  }
  return x;
}

// ---- double precision, one rounding each (the rejection rule of sampled drafts) -------------
INFERD_HD double dmul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
INFERD_HD double dsub_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
INFERD_HD double ddiv_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// Rejection sampling against a sampled draft x ~ q (SamplingRow::draft_row). p_i = m_i / M, the
// row's kept masses over their total (inv_total = 1 / M, one division). The draft is accepted
// when u1 * q(x) < p(x), u1 = uniform53(seed, position, kStreamAccept); else the token is drawn
// with u0 = uniform53(seed, position, kStreamToken) from the residual max(0, p_i - q_i) in units
// of 2^-56 (integers: their sums do not depend on the order of additions, so a parallel sum on
// the device equals the host's), the first id whose running residual exceeds floor(u0 * total).
constexpr double kResidualScale = 72057594037927936.0;  // 2^56

INFERD_HD double prob_of_mass(uint64_t mass, double inv_total) {
  return dmul_rn(double(mass), inv_total);
}
INFERD_HD bool accept_draft(double u1, float q_x, double p_x) {
  return dmul_rn(u1, double(q_x)) < p_x;
}
INFERD_HD uint64_t residual_mass(uint64_t mass, double inv_total, float q) {
  const double d = dsub_rn(prob_of_mass(mass, inv_total), double(q));
  return d > 0.0 ? uint64_t(dmul_rn(d, kResidualScale)) : 0;
}

// ---- Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3") ------------
struct Philox4 {
  uint32_t v[4];
};

INFERD_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
  return uint32_t((uint64_t(a) * uint64_t(b)) >> 32);
}

INFERD_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                uint32_t k1) {
  for (int i = 0; i < 10; ++i) {
    const uint32_t hi0 = mulhi32(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = mulhi32(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 53 bits, from (key, counter): the draw of output position `counter` of
// the sequence keyed `key`. `stream` separates independent uses of one position (0: the token).
INFERD_HD double uniform53(uint64_t key, uint64_t counter, uint32_t stream = 0) {
  const Philox4 r = philox4x32_10(uint32_t(counter), uint32_t(counter >> 32), stream, 0u,
                                  uint32_t(key), uint32_t(key >> 32));
  const uint64_t bits = (uint64_t(r.v[0]) << 32) | r.v[1];
  return double(bits >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

// The draw's threshold in mass units: the token drawn is the first (by id) kept token whose
// running mass exceeds it.
INFERD_HD uint64_t draw_threshold(double u, uint64_t total_mass) {
  return uint64_t(u * double(total_mass));
}

// How many mass units top-p must reach: the kept set is the shortest most-likely-first prefix whose
// mass is at least this (and at least one token).
INFERD_HD uint64_t top_p_target(float top_p, uint64_t total_mass) {
  return uint64_t(double(top_p) * double(total_mass));
}

}  // namespace inferd::sampling
