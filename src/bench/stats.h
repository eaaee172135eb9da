// Summary statistics for benchmark measurements: mean, standard deviation and percentiles.
#pragma once

#include <span>
#include <utility>
#include <vector>

namespace inferd::bench {

// The p-th percentile (0 <= p <= 100) of `sorted` (ascending), interpolating linearly between
// the two nearest ranks: rank = p/100 * (n - 1), as numpy.percentile's default ("linear") does.
// Returns 0 for an empty input.
double percentile_sorted(std::span<const double> sorted, double p);

// Same for unsorted values (copies and sorts).
double percentile(std::span<const double> values, double p);

struct Summary {
  size_t count = 0;
  double mean = 0;
  double stddev = 0;  // population standard deviation (numpy.std's default)
  double min = 0;
  double max = 0;
  std::vector<std::pair<double, double>> percentiles;  // (p, value) in the order asked

  // The value of percentile `p` when it was asked for; 0 otherwise.
  double at(double p) const;
};

Summary summarize(std::span<const double> values, std::span<const double> percentiles);

}  // namespace inferd::bench
