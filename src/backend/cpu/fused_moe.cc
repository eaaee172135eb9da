// The CPU reference of the mixture-of-experts op (fused_moe.h).
#include "backend/cpu/fused_moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"

namespace inferd::cpu {

namespace {

float* fp(const Tensor& t) {
  return t.data_as<float>();
}

// out[r, n] = x[r] . W_e[n] + b_e[n] for the rows of one expert's group, parallel over n.
void expert_gemm(const Kernels& k, ThreadPool& pool, const ExpertLinear& w, int64_t e,
                 const float* x, int64_t rows, float* out) {
  const int64_t N = w.out_features, K = w.in_features;
  const uint8_t* base = static_cast<const uint8_t*>(w.weight.data()) +
                        e * N * K * int64_t(dtype_size(w.weight.dtype()));
  const float* bias = w.bias.defined() ? fp(w.bias) + e * N : nullptr;
  pool.parallel_for(
      N,
      [&](int64_t n0, int64_t n1, int) {
        k.gemm(x, rows, K, base, w.weight.dtype(), bias, n0, n1, out, N);
      },
      16);
}

// act [rows, F] from gate_up [rows, 2F].
void activate(const Kernels& k, const MoeParams& p, const float* gu, int64_t rows, int64_t F,
              float* act) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gu + r * 2 * F;
    float* o = act + r * F;
    if (p.act == MoeParams::Act::kSilu && !p.interleaved_gate_up) {
      k.silu_mul(g, g + F, o, F);
      continue;
    }
    for (int64_t f = 0; f < F; ++f) {
      float gate = p.interleaved_gate_up ? g[2 * f] : g[f];
      float up = p.interleaved_gate_up ? g[2 * f + 1] : g[F + f];
      if (p.act == MoeParams::Act::kSilu) {
        o[f] = gate / (1.0f + std::exp(-gate)) * up;
      } else {
        gate = std::min(gate, p.limit);
        up = std::clamp(up, -p.limit, p.limit);
        o[f] = (up + 1.0f) * (gate / (1.0f + std::exp(-p.alpha * gate)));
      }
    }
  }
}

}  // namespace

void moe_route(const float* logits, int64_t E, const MoeParams& p, int32_t* ids, float* weights) {
  const int64_t K = p.top_k;
  // Selection by value, the lower index first among equal values.
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  for (int64_t j = 0; j < K; ++j) {
    int32_t best = -1;
    for (int32_t e = 0; e < int32_t(E); ++e) {
      if (std::find(ids, ids + j, e) != ids + j) continue;
      if (best < 0 || better(e, best)) best = e;
    }
    ids[j] = best;
  }
  if (p.softmax_before_topk) {
    // softmax over every logit, the chosen experts' probabilities (softmax is monotonic: the top
    // k of the logits are the top k of the probabilities).
    float mx = -INFINITY;
    for (int64_t e = 0; e < E; ++e) mx = std::max(mx, logits[e]);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += std::exp(double(logits[e] - mx));
    double chosen = 0;
    for (int64_t j = 0; j < K; ++j) {
      weights[j] = float(std::exp(double(logits[ids[j]] - mx)) / sum);
      chosen += weights[j];
    }
    if (p.renormalize)
      for (int64_t j = 0; j < K; ++j) weights[j] = float(weights[j] / chosen);
    return;
  }
  const float mx = logits[ids[0]];
  double sum = 0;
  for (int64_t j = 0; j < K; ++j) sum += std::exp(double(logits[ids[j]] - mx));
  for (int64_t j = 0; j < K; ++j) weights[j] = float(std::exp(double(logits[ids[j]] - mx)) / sum);
}

void fused_moe(const Kernels& k, ThreadPool& pool, const Tensor& x, const Tensor& router_logits,
               const ExpertLinear& gate_up, const ExpertLinear& down, const MoeParams& p,
               Tensor out, FusedMoeScratch& s) {
  const int64_t T = x.size(0), H = gate_up.in_features, E = gate_up.num_experts, K = p.top_k;
  const int64_t F2 = gate_up.out_features, F = F2 / 2, O = down.out_features;
  INFERD_CHECK(
      gate_up.format == ExpertLinear::Format::kDense && down.format == ExpertLinear::Format::kDense,
      "fused_moe: the CPU takes dense experts only");
  INFERD_CHECK(x.size(1) == H && down.in_features == F && down.num_experts == E &&
                   router_logits.size(0) == T && router_logits.size(1) == E && out.size(0) == T &&
                   out.size(1) == O && K > 0 && K <= E,
               "fused_moe: x {} logits {} gate_up [{}, {}, {}] down [{}, {}, {}] out {} top_k {}",
               x.shape_str(), router_logits.shape_str(), E, F2, H, down.num_experts, O,
               down.in_features, out.shape_str(), K);
  s.ids.resize(size_t(T * K));
  s.weights.resize(size_t(T * K));
  for (int64_t t = 0; t < T; ++t) {
    moe_route(fp(router_logits) + t * router_logits.stride(0), E, p, s.ids.data() + t * K,
              s.weights.data() + t * K);
  }
  // Group the (row, slot) entries by expert (counting sort: rows stay in order in a group).
  s.offsets.assign(size_t(E + 1), 0);
  for (int32_t e : s.ids) ++s.offsets[size_t(e + 1)];
  std::partial_sum(s.offsets.begin(), s.offsets.end(), s.offsets.begin());
  s.order.resize(size_t(T * K));
  s.fill.assign(s.offsets.begin(), s.offsets.end() - 1);
  for (int32_t i = 0; i < int32_t(T * K); ++i)
    s.order[size_t(s.fill[size_t(s.ids[size_t(i)])]++)] = i;
  s.y.resize(size_t(T * K * O));
  for (int64_t e = 0; e < E; ++e) {
    const int64_t begin = s.offsets[size_t(e)], rows = s.offsets[size_t(e + 1)] - begin;
    if (rows == 0) continue;
    s.x.resize(size_t(rows * H));
    s.gu.resize(size_t(rows * F2));
    s.act.resize(size_t(rows * F));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t t = s.order[size_t(begin + r)] / K;
      std::memcpy(s.x.data() + r * H, fp(x) + t * x.stride(0), size_t(H) * 4);
    }
    expert_gemm(k, pool, gate_up, e, s.x.data(), rows, s.gu.data());
    activate(k, p, s.gu.data(), rows, F, s.act.data());
    // Down into a contiguous block, then each row to its (row, slot) place.
    s.x.resize(size_t(std::max(rows * H, rows * O)));
    expert_gemm(k, pool, down, e, s.act.data(), rows, s.x.data());
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(s.y.data() + int64_t(s.order[size_t(begin + r)]) * O, s.x.data() + r * O,
                  size_t(O) * 4);
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    float* o = fp(out) + t * out.stride(0);
    std::fill(o, o + O, 0.f);
    for (int64_t j = 0; j < K; ++j)
      k.axpy(s.weights[size_t(t * K + j)], s.y.data() + (t * K + j) * O, o, O);
  }
}

}  // namespace inferd::cpu
