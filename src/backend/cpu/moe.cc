// The CPU reference of the mixture-of-experts ops (moe.h).
#include "backend/cpu/moe.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace inferd::cpu {

namespace {

// Row blocks of the expert GEMMs: one task computes rows [n0, n0 + kRowBlock) of one expert's
// output for all its tokens.
constexpr int64_t kRowBlock = 64;

// The k largest of v[0, E) (ties: the lower index first), in descending order.
void top_k(const float* v, int32_t E, int32_t k, int32_t* idx) {
  // Insertion into a sorted list of k: E is at most a few hundred.
  int32_t n = 0;
  for (int32_t e = 0; e < E; ++e) {
    if (n == k && !(v[e] > v[idx[k - 1]])) continue;
    int32_t pos = n < k ? n++ : k - 1;
    while (pos > 0 && v[e] > v[idx[pos - 1]]) {
      idx[pos] = idx[pos - 1];
      --pos;
    }
    idx[pos] = e;
  }
}

// out[f] = act(gate, up) for one row: gate/up F apart (or interleaved in pairs).
void activate_row(const Kernels& k, const MoeExperts& w, const float* gu, float* out) {
  const int64_t F = w.intermediate;
  if (w.act == MoeExperts::Act::kSilu && !w.gate_up_interleaved) {
    k.silu_mul(gu, gu + F, out, F);
    return;
  }
  for (int64_t f = 0; f < F; ++f) {
    float g = w.gate_up_interleaved ? gu[2 * f] : gu[f];
    float u = w.gate_up_interleaved ? gu[2 * f + 1] : gu[F + f];
    if (w.act == MoeExperts::Act::kSilu) {
      out[f] = g / (1.0f + std::exp(-g)) * u;
    } else {
      // gpt-oss: gate clamped above at limit, up to [-limit, limit]; (up + 1) * gate *
      // sigmoid(alpha * gate).
      g = std::min(g, w.act_limit);
      u = std::clamp(u, -w.act_limit, w.act_limit);
      out[f] = (u + 1.0f) * (g / (1.0f + std::exp(-w.act_alpha * g)));
    }
  }
}

const float* bias_row(const Tensor& b, int64_t e) {
  return b.defined() ? b.data_as<float>() + e * b.size(1) : nullptr;
}

}  // namespace

void moe_topk(const Tensor& logits, const MoeRouting& r, Tensor ids, Tensor weights) {
  const int64_t T = logits.size(0), E = logits.size(1), ld = logits.stride(0);
  const int32_t K = r.top_k;
  INFERD_CHECK(E == r.num_experts && K > 0 && K <= E && ids.size(1) == K && weights.size(1) == K &&
                   logits.dtype() == DType::kF32,
               "moe_topk: logits {} for {} experts, top {}", logits.shape_str(), r.num_experts, K);
  thread_local std::vector<float> p;  // grown once per thread
  p.resize(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits.data_as<float>() + t * ld;
    int32_t* id = ids.data_as<int32_t>() + t * K;
    float* wt = weights.data_as<float>() + t * K;
    if (r.softmax_before_topk) {
      const float mx = *std::max_element(l, l + E);
      double sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += p[size_t(e)] = std::exp(l[e] - mx);
      for (int64_t e = 0; e < E; ++e) p[size_t(e)] = float(p[size_t(e)] / sum);
      top_k(p.data(), int32_t(E), K, id);
      double s = 0;
      for (int32_t j = 0; j < K; ++j) s += wt[j] = p[size_t(id[j])];
      if (r.renormalize)
        for (int32_t j = 0; j < K; ++j) wt[j] = float(wt[j] / s);
    } else {
      top_k(l, int32_t(E), K, id);
      const float mx = l[id[0]];
      double sum = 0;
      for (int32_t j = 0; j < K; ++j) sum += wt[j] = std::exp(l[id[j]] - mx);
      for (int32_t j = 0; j < K; ++j) wt[j] = float(wt[j] / sum);
    }
  }
}

void moe_experts(ThreadPool& pool, const Kernels& k, const Tensor& x, const MoeExperts& w,
                 const Tensor& ids, const Tensor& weights, Tensor counts, Tensor out,
                 MoeScratch& s) {
  const int64_t T = x.size(0), H = w.hidden, F = w.intermediate, E = w.num_experts;
  const int64_t K = ids.size(1), N = T * K, ldx = x.stride(0);
  INFERD_CHECK(w.format == MoeExperts::Format::kDense && int64_t(w.gate_up.size()) == E &&
                   int64_t(w.down.size()) == E,
               "moe_experts: the CPU computes dense experts placed by its make_moe_experts");
  INFERD_CHECK(x.size(1) == H && out.size(0) == T && out.size(1) == H && ids.size(0) == T,
               "moe_experts: x {} out {} ids {} for hidden {}", x.shape_str(), out.shape_str(),
               ids.shape_str(), H);
  const int32_t* id = ids.data_as<int32_t>();
  const float* wt = weights.data_as<float>();
  // Group the (token, choice) slots by expert, tokens in order within an expert.
  s.counts.assign(size_t(E), 0);
  for (int64_t i = 0; i < N; ++i) {
    INFERD_CHECK(id[i] >= 0 && id[i] < E, "moe_experts: expert id {} of {}", id[i], E);
    ++s.counts[size_t(id[i])];
  }
  s.offsets.resize(size_t(E) + 1);
  s.offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e)
    s.offsets[size_t(e) + 1] = s.offsets[size_t(e)] + s.counts[size_t(e)];
  s.fill.assign(s.offsets.begin(), s.offsets.end() - 1);
  s.perm.resize(size_t(N));  // perm[row] = slot (t * K + j); slot_row inverts it
  s.slot_row.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) s.perm[size_t(s.fill[size_t(id[i])]++)] = int32_t(i);
  for (int64_t r = 0; r < N; ++r) s.slot_row[size_t(s.perm[size_t(r)])] = int32_t(r);
  if (counts.defined()) {
    for (int64_t e = 0; e < E; ++e) counts.data_as<int32_t>()[e] += s.counts[size_t(e)];
  }
  s.xs.resize(size_t(N * H));
  s.gate_up.resize(size_t(N * 2 * F));
  s.act.resize(size_t(N * F));
  s.y.resize(size_t(N * H));
  pool.parallel_for(
      N,
      [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r)
          std::copy_n(x.data_as<float>() + (s.perm[size_t(r)] / K) * ldx, H, s.xs.data() + r * H);
      },
      4);
  // One GEMM pass over (expert, row block) tasks for each projection.
  auto run = [&](int64_t rows_out, int64_t in, const float* src, float* dst, bool gate_up) {
    s.tasks.clear();
    for (int64_t e = 0; e < E; ++e)
      if (s.counts[size_t(e)] > 0)
        for (int64_t n0 = 0; n0 < rows_out; n0 += kRowBlock) s.tasks.push_back(e * rows_out + n0);
    pool.parallel_for(int64_t(s.tasks.size()), [&](int64_t b, int64_t end, int) {
      for (int64_t i = b; i < end; ++i) {
        const int64_t e = s.tasks[size_t(i)] / rows_out, n0 = s.tasks[size_t(i)] % rows_out;
        const int64_t n1 = std::min(rows_out, n0 + kRowBlock);
        const int64_t r0 = s.offsets[size_t(e)], nt = s.counts[size_t(e)];
        const float* xin = src + r0 * in;
        float* o = dst + r0 * rows_out;
        const float* bias = bias_row(gate_up ? w.w13_bias : w.w2_bias, e);
        if (!gate_up) {
          const Tensor& d = w.down[size_t(e)];
          k.gemm(xin, nt, in, d.data(), d.dtype(), bias, n0, n1, o, rows_out);
          continue;
        }
        int64_t base = 0;  // the row blocks (gate, up) of this expert's gate_up
        for (const Tensor& p : w.gate_up[size_t(e)]) {
          const int64_t a = std::max(n0, base), z = std::min(n1, base + p.size(0));
          if (a < z)
            k.gemm(xin, nt, in, p.data(), p.dtype(), bias ? bias + base : nullptr, a - base,
                   z - base, o + base, rows_out);
          base += p.size(0);
        }
      }
    });
  };
  run(2 * F, H, s.xs.data(), s.gate_up.data(), true);
  pool.parallel_for(
      N,
      [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r)
          activate_row(k, w, s.gate_up.data() + r * 2 * F, s.act.data() + r * F);
      },
      4);
  run(H, F, s.act.data(), s.y.data(), false);
  // Each token's k outputs in choice order.
  pool.parallel_for(
      T,
      [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) {
          float* o = out.data_as<float>() + t * out.stride(0);
          std::fill(o, o + H, 0.0f);
          for (int64_t j = 0; j < K; ++j)
            k.axpy(wt[t * K + j], s.y.data() + int64_t(s.slot_row[size_t(t * K + j)]) * H, o, H);
        }
      },
      4);
}

}  // namespace inferd::cpu
