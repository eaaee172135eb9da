// CPU decode benchmark: single-stream decode tok/s against the memory-bandwidth floor measured in
// the same run (each decode step must read every weight matrix once).
//   cpu_decode MODEL_DIR [--prompt N] [--tokens N] [--threads N]   (weights: --load-format dummy)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

using namespace inferd;
using clock_type = std::chrono::steady_clock;

static double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Read bandwidth with all threads: sum of a buffer much larger than the caches.
static double read_bandwidth(ThreadPool& pool) {
  const size_t n = size_t(1) << 28;  // 1 GiB of floats
  std::vector<float> buf(n, 1.0f);
  std::vector<double> partial(size_t(pool.num_threads()), 0.0);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = clock_type::now();
    pool.parallel_for(
        int64_t(n),
        [&](int64_t b, int64_t e, int tid) {
          float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (int64_t i = b; i + 3 < e; i += 4) {
            s0 += buf[size_t(i)];
            s1 += buf[size_t(i + 1)];
            s2 += buf[size_t(i + 2)];
            s3 += buf[size_t(i + 3)];
          }
          partial[size_t(tid)] += double(s0 + s1 + s2 + s3);
        },
        1 << 16);
    best = std::max(best, double(n * 4) / seconds_since(t0));
  }
  if (partial[0] < 0) std::printf("?");  // keep the sums alive
  return best;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [--prompt N] [--tokens N] [--threads N]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int prompt_len = 128, tokens = 64, threads = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--prompt")) prompt_len = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--tokens")) tokens = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  ThreadPool pool(threads);  // for the bandwidth measurement; the backend has its own
  const int nt = pool.num_threads();
  RunnerOptions o;
  o.load.format = LoadFormat::kDummy;
  o.max_model_len = prompt_len + tokens + 16;
  o.num_kv_blocks = (o.max_model_len + 15) / 16;
  o.max_num_batched_tokens = std::max(prompt_len, 16);
  auto t0 = clock_type::now();
  ModelRunner m(dir, o, make_cpu_backend(nt));
  const double load_s = seconds_since(t0);
  const auto& c = m.config();
  // Bytes every decode step reads: all linear weights (lm_head included), bf16.
  const double weight_bytes =
      2.0 * double(c.num_layers) *
          double(c.hidden_size * (c.q_size() + 2 * c.kv_size()) + c.q_size() * c.hidden_size +
                 3 * c.hidden_size * c.intermediate_size) +
      2.0 * double(c.vocab_size * c.hidden_size);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
  for (int i = 0; i < prompt_len; ++i) prompt[size_t(i)] = (i * 7919 + 11) % int32_t(c.vocab_size);
  int n = 0;
  clock_type::time_point t_first;
  t0 = clock_type::now();
  greedy_generate(m, prompt, tokens, o.max_num_batched_tokens, {}, [&](int32_t) {
    if (n++ == 0) t_first = clock_type::now();
  });
  const double decode_s = seconds_since(t_first);
  const double prefill_s = std::chrono::duration<double>(t_first - t0).count();
  const double tps = double(tokens - 1) / decode_s;
  const double bw = read_bandwidth(pool);
  const double floor_tps = bw / weight_bytes;
  std::printf("model          %s (%s, %.0fM params in linears)\n", dir.c_str(),
              c.architecture.c_str(), weight_bytes / 2e6);
  std::printf("backend        %s; dummy load %.1f s\n", m.backend().name().c_str(), load_s);
  std::printf("prefill        %d tokens: %.1f tok/s\n", prompt_len, prompt_len / prefill_s);
  std::printf("decode         %d tokens: %.2f tok/s (%.1f ms/token)\n", tokens - 1, tps, 1e3 / tps);
  std::printf("read bandwidth %.1f GB/s (%d threads) -> floor %.2f tok/s\n", bw / 1e9, nt,
              floor_tps);
  std::printf("decode / floor %.0f%%\n", 100.0 * tps / floor_tps);
  return 0;
}
