// The CPU reference of the mixture-of-experts ops (issue 27) against a plain float64 loop:
// routing in every MoeRouting mode (ties to the lower expert), the experts with per-expert and
// stacked weights, interleaved gate/up with gpt-oss's clamped SwiGLU and biases, the expert-load
// counts, and results that do not depend on what else is in the batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"

namespace inferd {
namespace {

Tensor rand_f32(std::initializer_list<int64_t> shape, Rng& rng, float scale) {
  Tensor t = Tensor::empty_host(DType::kF32, shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data_as<float>()[i] = float((rng.uniform() * 2 - 1) * scale);
  return t;
}

// The reference routing of one row: (expert, weight) pairs, best first.
std::vector<std::pair<int, double>> route_ref(const float* l, int E, int K, const MoeRouting& r) {
  std::vector<int> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  std::vector<std::pair<int, double>> out;
  if (r.softmax_before_topk) {
    double mx = l[order[0]], s = 0;
    for (int e = 0; e < E; ++e) s += std::exp(double(l[e]) - mx);
    double top = 0;
    for (int j = 0; j < K; ++j) top += std::exp(double(l[order[size_t(j)]]) - mx) / s;
    for (int j = 0; j < K; ++j) {
      const double p = std::exp(double(l[order[size_t(j)]]) - mx) / s;
      out.push_back({order[size_t(j)], r.renormalize ? p / top : p});
    }
  } else {
    double s = 0;
    for (int j = 0; j < K; ++j) s += std::exp(double(l[order[size_t(j)]] - l[order[0]]));
    for (int j = 0; j < K; ++j)
      out.push_back({order[size_t(j)], std::exp(double(l[order[size_t(j)]] - l[order[0]])) / s});
  }
  return out;
}

TEST(CpuMoe, TopkMatchesReferenceInEveryModeWithTiesToTheLowerExpert) {
  auto cpu = make_cpu_backend(2);
  Rng rng(7);
  for (int mode = 0; mode < 3; ++mode) {
    const MoeRouting r{16, 4, mode != 2, mode == 0};
    const int64_t T = 9;
    Tensor logits = rand_f32({T, 16}, rng, 3.0f);
    // Row 0: a four-way tie for the top; row 1: all equal.
    for (int e : {3, 5, 9, 12}) logits.data_as<float>()[e] = 5.0f;
    std::fill_n(logits.data_as<float>() + 16, 16, 0.25f);
    Tensor ids = Tensor::empty_host(DType::kI32, {T, 4});
    Tensor w = Tensor::empty_host(DType::kF32, {T, 4});
    cpu->moe_topk(logits, r, ids, w);
    for (int64_t t = 0; t < T; ++t) {
      const auto ref = route_ref(logits.data_as<float>() + t * 16, 16, 4, r);
      for (int j = 0; j < 4; ++j) {
        EXPECT_EQ(ids.data_as<int32_t>()[t * 4 + j], ref[size_t(j)].first)
            << "mode " << mode << " row " << t << " choice " << j;
        EXPECT_NEAR(w.data_as<float>()[t * 4 + j], ref[size_t(j)].second, 1e-6);
      }
    }
    EXPECT_EQ(ids.data_as<int32_t>()[0], 3);
    EXPECT_EQ(ids.data_as<int32_t>()[4 + 3], 3);  // row 1: experts 0, 1, 2, 3
  }
}

struct Case {
  bool stacked, interleaved, clamp, bias;
};

TEST(CpuMoe, ExpertsMatchAPlainLoop) {
  auto cpu = make_cpu_backend(3);
  Rng rng(11);
  const int64_t E = 6, H = 40, F = 24, K = 2, T = 13;
  for (const Case c : {Case{true, false, false, false}, Case{false, false, false, false},
                       Case{true, true, true, true}}) {
    const Tensor w13 = rand_f32({E, 2 * F, H}, rng, 0.3f), w2 = rand_f32({E, H, F}, rng, 0.3f);
    const Tensor b13 = rand_f32({E, 2 * F}, rng, 0.5f), b2 = rand_f32({E, H}, rng, 0.5f);
    MoeExpertTensors t;
    if (c.stacked) {
      t.w13 = w13;
      t.w2 = w2;
    } else {
      for (int64_t e = 0; e < E; ++e) {
        auto view = [&](const Tensor& a, int64_t r0, int64_t r1) {
          return Tensor(a.data_as<float>() + (e * a.size(1) + r0) * a.size(2), DType::kF32,
                        {r1 - r0, a.size(2)});
        };
        t.gate_up.push_back({view(w13, 0, F), view(w13, F, 2 * F)});
        t.down.push_back(view(w2, 0, H));
      }
    }
    if (c.bias) {
      t.w13_bias = b13;
      t.w2_bias = b2;
    }
    MoeExperts w = cpu->make_moe_experts(t, H, F);
    w.gate_up_interleaved = c.interleaved;
    if (c.clamp) w.act = MoeExperts::Act::kSwigluClamp;
    const Tensor x = rand_f32({T, H}, rng, 1.0f);
    Tensor ids = Tensor::empty_host(DType::kI32, {T, K});
    Tensor wt = Tensor::empty_host(DType::kF32, {T, K});
    cpu->moe_topk(rand_f32({T, E}, rng, 2.0f), MoeRouting{int32_t(E), int32_t(K), true, true}, ids,
                  wt);
    Tensor out = Tensor::empty_host(DType::kF32, {T, H});
    Tensor counts = Tensor::empty_host(DType::kI32, {E});
    cpu->moe_experts(x, w, ids, wt, Tensor(), counts, out);
    std::vector<int32_t> want_counts(size_t(E), 0);
    for (int64_t t0 = 0; t0 < T; ++t0) {
      std::vector<double> ref(size_t(H), 0.0);
      for (int64_t j = 0; j < K; ++j) {
        const int32_t e = ids.data_as<int32_t>()[t0 * K + j];
        ++want_counts[size_t(e)];
        std::vector<double> act(static_cast<size_t>(F));
        for (int64_t f = 0; f < F; ++f) {
          const int64_t gr = c.interleaved ? 2 * f : f, ur = c.interleaved ? 2 * f + 1 : F + f;
          double g = c.bias ? b13.data_as<float>()[e * 2 * F + gr] : 0.0;
          double u = c.bias ? b13.data_as<float>()[e * 2 * F + ur] : 0.0;
          for (int64_t k = 0; k < H; ++k) {
            g += double(w13.data_as<float>()[(e * 2 * F + gr) * H + k]) *
                 x.data_as<float>()[t0 * H + k];
            u += double(w13.data_as<float>()[(e * 2 * F + ur) * H + k]) *
                 x.data_as<float>()[t0 * H + k];
          }
          if (c.clamp) {
            g = std::min(g, 7.0);
            u = std::clamp(u, -7.0, 7.0);
            act[size_t(f)] = (u + 1) * g / (1 + std::exp(-1.702 * g));
          } else {
            act[size_t(f)] = g / (1 + std::exp(-g)) * u;
          }
        }
        for (int64_t n = 0; n < H; ++n) {
          double y = c.bias ? b2.data_as<float>()[e * H + n] : 0.0;
          for (int64_t f = 0; f < F; ++f)
            y += double(w2.data_as<float>()[(e * H + n) * F + f]) * act[size_t(f)];
          ref[size_t(n)] += wt.data_as<float>()[t0 * K + j] * y;
        }
      }
      for (int64_t n = 0; n < H; ++n)
        EXPECT_NEAR(out.data_as<float>()[t0 * H + n], ref[size_t(n)],
                    1e-4 * (1 + std::fabs(ref[size_t(n)])))
            << "row " << t0 << " col " << n << " stacked " << c.stacked << " variant " << c.clamp;
    }
    for (int64_t e = 0; e < E; ++e) EXPECT_EQ(counts.data_as<int32_t>()[e], want_counts[size_t(e)]);
    // Each row alone gives bit-identical results.
    for (int64_t t0 = 0; t0 < T; t0 += 5) {
      Tensor one = Tensor::empty_host(DType::kF32, {1, H});
      cpu->moe_experts(x.slice_rows(t0, t0 + 1), w, ids.slice_rows(t0, t0 + 1),
                       wt.slice_rows(t0, t0 + 1), Tensor(), Tensor(), one);
      for (int64_t n = 0; n < H; ++n)
        ASSERT_EQ(one.data_as<float>()[n], out.data_as<float>()[t0 * H + n]) << t0 << " " << n;
    }
  }
}

}  // namespace
}  // namespace inferd
