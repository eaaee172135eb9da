// What the CUDA micro-benchmarks (cuda_ggml_bench, cuda_int4_bench, cuda_lora_bench) share: the
// time of one call from a CUDA graph of many, and the --device flag with the backend it opens.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "backend/cuda/cuda_backend.h"

namespace inferd::bench {

// Seconds per call of `fn`, from a CUDA graph of `reps` calls (enough for ~20 ms, 5 to 200); the
// best of three replays. `fn` runs twice eagerly first (plans, scratch). `key` names the graph.
inline double time_per_call(Backend& gpu, const std::function<void()>& fn, int32_t key) {
  using clock = std::chrono::steady_clock;
  fn();
  cuda_synchronize(gpu);
  auto t0 = clock::now();
  fn();
  cuda_synchronize(gpu);
  const double once = std::chrono::duration<double>(clock::now() - t0).count();
  const int reps = int(std::clamp(0.02 / std::max(once, 1e-7), 5.0, 200.0));
  gpu.begin_graph_capture();
  for (int i = 0; i < reps; ++i) fn();
  gpu.end_graph_capture(key);
  double best = 1e30;
  for (int trial = 0; trial < 3; ++trial) {
    t0 = clock::now();
    gpu.replay_graph(key);
    cuda_synchronize(gpu);
    best = std::min(best, std::chrono::duration<double>(clock::now() - t0).count() / reps);
  }
  return best;
}

// The CUDA backend of `argv`'s `--device N` (default 0); `extra(flag, value)` takes the
// benchmark's own flags that have a value (false: unknown). Null after printing the usage line
// (bad flags, *rc = 2) or the error (no GPU, *rc = 1).
inline std::unique_ptr<Backend> open_cuda_bench(
    int argc, char** argv, const char* usage, int* rc,
    const std::function<bool(const std::string&, const char*)>& extra = nullptr) {
  int device = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 < argc && a == "--device") {
      device = std::atoi(argv[++i]);
    } else if (!(i + 1 < argc && extra && extra(a, argv[i + 1]))) {
      std::fprintf(stderr, "usage: %s\n", usage);
      *rc = 2;
      return nullptr;
    } else {
      ++i;
    }
  }
  try {
    return make_cuda_backend(device);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    *rc = 1;
    return nullptr;
  }
}

}  // namespace inferd::bench
