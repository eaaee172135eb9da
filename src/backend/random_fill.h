// The seeded random values of `--load-format dummy`: element i of a tensor depends only on
// (seed, i), so the CPU and CUDA backends (kernels.cu has the device twin of this formula) make
// bit-identical dummy models, in parallel, in any order.
#pragma once

#include <cstdint>

namespace inferd {

inline uint64_t random_fill_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform on [-a, a] with a = stddev * sqrt(3) (standard deviation `stddev`), or `fill` when
// stddev is 0.
inline float random_fill_value(uint64_t seed, int64_t i, float stddev, float fill) {
  if (stddev == 0.f) return fill;
  const float a = stddev * 1.7320508075688772f;
  const uint64_t base = random_fill_mix(seed + 0x9e3779b97f4a7c15ull);
  const uint64_t h = random_fill_mix(base ^ (uint64_t(i) * 0x9e3779b97f4a7c15ull));
  const float u = float(h >> 40) * (1.0f / 16777216.0f);
  return (u * 2.0f - 1.0f) * a;
}

}  // namespace inferd
