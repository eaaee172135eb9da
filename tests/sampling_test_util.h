// Shared by the sampler tests (CPU reference and CUDA): the exact distribution the documented
// sampling semantics give on a small row, and a chi-square check of drawn counts against it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace inferd::test {

// The distribution the documented semantics give, written independently of the sampler.
inline std::vector<double> expected_dist(const std::vector<float>& l, float t, int32_t top_k,
                                         float top_p, float min_p) {
  const size_t V = l.size();
  std::vector<double> p(V);
  double mx = *std::max_element(l.begin(), l.end()), s = 0;
  for (size_t i = 0; i < V; ++i) s += p[i] = std::exp((l[i] - mx) / t);
  for (auto& x : p) x /= s;
  const double pmax = *std::max_element(p.begin(), p.end());
  std::vector<bool> keep(V, true);
  for (size_t i = 0; i < V; ++i) keep[i] = p[i] >= min_p * pmax;
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  if (top_k > 0) {
    int32_t seen = 0;
    for (size_t i : order) {
      if (!keep[i]) continue;
      if (++seen > top_k) keep[i] = false;
    }
  }
  if (top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < V; ++i) mass += keep[i] ? p[i] : 0;
    double acc = 0;
    bool reached = false;
    for (size_t i : order) {
      if (!keep[i]) continue;
      if (reached) {
        keep[i] = false;
        continue;
      }
      acc += p[i] / mass;
      if (acc >= top_p) reached = true;
    }
  }
  double tot = 0;
  for (size_t i = 0; i < V; ++i) tot += keep[i] ? p[i] : 0;
  std::vector<double> out(V);
  for (size_t i = 0; i < V; ++i) out[i] = keep[i] ? p[i] / tot : 0;
  return out;
}

// Chi-square critical values at p = 0.001 for 1..7 degrees of freedom.
inline constexpr double kChi2Crit[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};

struct ChiSquare {
  double chi2 = 0;
  int df = -1;  // degrees of freedom: tokens with a non-zero expected share, minus one
  std::vector<int32_t> drawn_but_filtered;  // tokens drawn although their expected share is 0
};

// counts[i]: how often token i was drawn; want[i]: its expected share.
inline ChiSquare chi_square(const std::vector<int64_t>& counts, const std::vector<double>& want) {
  ChiSquare r;
  double n = 0;
  for (int64_t c : counts) n += double(c);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (want[i] == 0) {
      if (counts[i] != 0) r.drawn_but_filtered.push_back(int32_t(i));
      continue;
    }
    const double e = want[i] * n;
    r.chi2 += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
    ++r.df;
  }
  return r;
}

}  // namespace inferd::test
