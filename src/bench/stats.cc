#include "bench/stats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace inferd::bench {

double percentile_sorted(std::span<const double> sorted, double p) {
  INFERD_CHECK(p >= 0 && p <= 100, "percentile {} outside [0, 100]", p);
  if (sorted.empty()) return 0;
  const double rank = p / 100.0 * double(sorted.size() - 1);
  const size_t lo = size_t(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - double(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

double percentile(std::span<const double> values, double p) {
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  return percentile_sorted(v, p);
}

double Summary::at(double p) const {
  for (const auto& [q, v] : percentiles)
    if (q == p) return v;
  return 0;
}

Summary summarize(std::span<const double> values, std::span<const double> percentiles) {
  Summary s;
  s.count = values.size();
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  if (!v.empty()) {
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / double(v.size());
    double sq = 0;
    for (double x : v) sq += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(sq / double(v.size()));
    s.min = v.front();
    s.max = v.back();
  }
  for (double p : percentiles) s.percentiles.emplace_back(p, percentile_sorted(v, p));
  return s;
}

}  // namespace inferd::bench
