// CPU quantized-GEMM benchmark: cpu::qlinear (activations quantized, then integer dot products
// with GGUF weight blocks) and, for comparison, the bf16 gemm, at the shapes of Qwen2.5-0.5B/1.5B,
// decode (T=1) and prefill (T=128), on 1 and 2 threads. Prints weight GB/s and GFLOP/s. Decode
// cycles through copies of the weights totalling > 256 MiB so that they come from memory, as in a
// model's decode step. Last, the linear layers of one decode step of Qwen2.5-0.5B as llama.cpp's
// Q4_K_M file holds them (Q5_0 / Q8_0 where rows are 896 wide, Q4_K / Q6_K for ffn_down, Q8_0
// lm_head), as tokens/s of the linear layers alone.
//   cpu_qgemm_bench [--isa NAME] [--threads N] [--quick] [--hot] [--decode-only]
//                   [--prefill-only] [--type NAME] (NAME as ggml names it: q5_0, q4_K, ...)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/qlinear.h"
#include "core/ggml_types.h"
#include "core/rng.h"
#include "core/thread_pool.h"

using namespace inferd;
using ggml::Type;
using clock_type = std::chrono::steady_clock;

namespace {

struct Weights {
  Type type;
  int64_t K, N;
  std::vector<uint8_t> bytes;  // N rows of K (bf16 when type is kBF16)
};

// N rows of K: 16 distinct quantized rows repeated (quantizing hundreds of MB would take minutes).
Weights make_weights(Type t, int64_t K, int64_t N, Rng& rng) {
  std::vector<float> row(static_cast<size_t>(K));
  Weights w{t, K, N, {}};
  const int64_t rb = ggml::row_bytes(t, K);
  w.bytes.resize(size_t(N * rb));
  for (int64_t n = 0; n < N; ++n) {
    if (n >= 16) {
      std::memcpy(w.bytes.data() + n * rb, w.bytes.data() + (n % 16) * rb, size_t(rb));
      continue;
    }
    for (auto& v : row) v = float(rng.normal()) * 0.05f;
    ggml::quantize_row(t, row.data(), w.bytes.data() + n * rb, K);
  }
  return w;
}

void run_linear(ThreadPool& pool, const cpu::Kernels& k, const float* x, int64_t T,
                const Weights& w, float* out, std::vector<uint8_t>& scratch) {
  if (w.type == Type::kBF16) {
    pool.parallel_for(
        w.N,
        [&](int64_t n0, int64_t n1, int) {
          k.gemm(x, T, w.K, w.bytes.data(), DType::kBF16, nullptr, n0, n1, out, w.N);
        },
        16);
    return;
  }
  cpu::qlinear(pool, k, x, T, w.K, w.bytes.data(), w.type, nullptr, w.N, out, w.N, scratch);
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Read bandwidth with the pool's threads (integer sums of a 512 MiB buffer), and the cost of one
// parallel_for that does nothing.
void bench_memory(ThreadPool& pool) {
  const size_t n = size_t(1) << 26;
  std::vector<uint64_t> buf(n, 1), partial(64, 0);
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {
    const auto t0 = clock_type::now();
    pool.parallel_for(
        int64_t(n),
        [&](int64_t b, int64_t e, int tid) {
          uint64_t s = 0;
          for (int64_t i = b; i < e; ++i) s += buf[size_t(i)];
          partial[size_t(tid)] += s;
        },
        1 << 16);
    best = std::max(best, double(n * 8) / seconds_since(t0));
  }
  const int reps = 20000;
  const auto t0 = clock_type::now();
  for (int r = 0; r < reps; ++r)
    pool.parallel_for(64, [&](int64_t, int64_t, int tid) { partial[size_t(tid)]++; });
  std::printf("threads %d: read bandwidth %.1f GB/s; empty parallel_for %.1f us%s\n",
              pool.num_threads(), best * 1e-9, seconds_since(t0) / reps * 1e6,
              partial[0] == 0 ? "?" : "");
}

void bench_shape(ThreadPool& pool, const cpu::Kernels& k, Type t, int64_t K, int64_t N, int64_t T,
                 Rng& rng, bool quick, bool hot) {
  const int64_t bytes_one = ggml::row_bytes(t, K) * N;
  const int64_t copies =
      T == 1 && !hot ? std::max<int64_t>(1, (int64_t(256) << 20) / bytes_one + 1) : 1;
  std::vector<Weights> ws;
  for (int64_t c = 0; c < copies; ++c) ws.push_back(make_weights(t, K, N, rng));
  std::vector<float> x(static_cast<size_t>(T * K)), out(static_cast<size_t>(T * N));
  for (auto& v : x) v = float(rng.normal());
  std::vector<uint8_t> scratch;
  run_linear(pool, k, x.data(), T, ws[0], out.data(), scratch);  // warm up
  // Rounds of passes over the copies; the best round counts (the machine is shared).
  const double budget = quick ? 0.15 : 0.5;
  const int64_t per_round = std::max<int64_t>(copies, T == 1 ? 8 : 1);
  double per = 1e30;
  const auto t0 = clock_type::now();
  for (int round = 0; round < 3 || seconds_since(t0) < budget; ++round) {
    const auto r0 = clock_type::now();
    for (int64_t r = 0; r < per_round; ++r)
      run_linear(pool, k, x.data(), T, ws[size_t(r % copies)], out.data(), scratch);
    per = std::min(per, seconds_since(r0) / double(per_round));
  }
  // The same walk over the copies that only reads the bytes (one parallel_for per copy, rows split
  // as qlinear splits them): the memory floor of this shape.
  double floor_per = 1e30;
  if (T == 1) {
    std::vector<uint64_t> sink(64, 0);
    for (int round = 0; round < 3; ++round) {
      const auto r0 = clock_type::now();
      for (int64_t r = 0; r < per_round; ++r) {
        const Weights& w = ws[size_t(r % copies)];
        const int64_t rb = int64_t(w.bytes.size()) / w.N;
        pool.parallel_for(
            w.N,
            [&](int64_t n0, int64_t n1, int tid) {
              const auto* p = reinterpret_cast<const uint64_t*>(w.bytes.data() + n0 * rb);
              uint64_t acc = 0;
              for (int64_t i = 0; i < (n1 - n0) * rb / 8; ++i) acc += p[i];
              sink[size_t(tid)] += acc;
            },
            8);
      }
      floor_per = std::min(floor_per, seconds_since(r0) / double(per_round));
    }
    if (sink[0] == 1) std::printf("?");
  }
  std::printf("%-6s K=%5lld N=%5lld T=%3lld thr=%d  %8.1f us  %6.2f GB/s  %7.1f GFLOP/s%s\n",
              std::string(ggml::traits(t).name).c_str(), (long long)K, (long long)N, (long long)T,
              pool.num_threads(), per * 1e6, double(bytes_one) / per * 1e-9,
              2.0 * double(T * N * K) / per * 1e-9,
              T == 1
                  ? ("  (read-only walk: " + std::to_string(int(floor_per * 1e6)) + " us, " +
                     std::to_string(double(bytes_one) / floor_per * 1e-9).substr(0, 5) + " GB/s)")
                        .c_str()
                  : "");
}

// One decode step's linear layers of Qwen2.5-0.5B in llama.cpp's Q4_K_M file.
void bench_qwen05_decode(ThreadPool& pool, const cpu::Kernels& k, Rng& rng, bool bf16) {
  std::vector<Weights> ws;
  double bytes = 0;
  for (int l = 0; l < 24; ++l) {
    const bool more = l % 2 == 0;  // llama.cpp's use_more_bits layers (approximately half)
    auto add = [&](Type t, int64_t K, int64_t N) {
      ws.push_back(make_weights(bf16 ? Type::kBF16 : t, K, N, rng));
      bytes += double(ws.back().bytes.size());
    };
    add(Type::kQ5_0, 896, 896 + 2 * 128);  // q, k, v (one matrix)
    add(Type::kQ5_0, 896, 896);            // o
    add(Type::kQ5_0, 896, 2 * 4864);       // gate, up
    add(more ? Type::kQ6_K : Type::kQ4_K, 4864, 896);
  }
  ws.push_back(make_weights(bf16 ? Type::kBF16 : Type::kQ8_0, 896, 151936, rng));
  bytes += double(ws.back().bytes.size());
  std::vector<float> x(static_cast<size_t>(9728)), out(static_cast<size_t>(151936));
  for (auto& v : x) v = float(rng.normal());
  std::vector<uint8_t> scratch;
  auto step = [&] {
    for (const Weights& w : ws) run_linear(pool, k, x.data(), 1, w, out.data(), scratch);
  };
  step();
  double per = 1e30;
  const auto t0 = clock_type::now();
  for (int reps = 0; reps < 5 || seconds_since(t0) < 1.0; ++reps) {
    const auto r0 = clock_type::now();
    step();
    per = std::min(per, seconds_since(r0));
  }
  std::printf("qwen2.5-0.5B %s linears, decode step: %.2f ms, %.1f tok/s, %.2f GB/s (%.0f MB)\n",
              bf16 ? "bf16" : "Q4_K_M", per * 1e3, 1.0 / per, bytes / per * 1e-9, bytes * 1e-6);
}

}  // namespace

int main(int argc, char** argv) {
  std::string isa;
  int threads = 0;
  std::string only_type;
  bool quick = false, hot = false, decode_only = false, prefill_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) isa = argv[++i];
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--decode-only")) decode_only = true;
    if (!std::strcmp(argv[i], "--prefill-only")) prefill_only = true;
    if (!std::strcmp(argv[i], "--type") && i + 1 < argc) only_type = argv[++i];
    if (!std::strcmp(argv[i], "--hot")) hot = true;  // one copy of the weights (caches warm)
  }
  const cpu::Kernels* k = isa.empty() ? &cpu::kernels() : cpu::kernels_for(isa.c_str());
  if (k == nullptr) {
    std::fprintf(stderr, "this CPU lacks %s\n", isa.c_str());
    return 2;
  }
  std::printf("kernels: %s\n", k->isa);
  Rng rng(1);
  const std::vector<int> thread_counts =
      threads > 0 ? std::vector<int>{threads} : std::vector<int>{1, 2};
  for (int nt : thread_counts) {
    ThreadPool pool(nt);
    bench_memory(pool);
    for (int64_t T : {1, 128}) {
      if ((T == 128 && decode_only) || (T == 1 && prefill_only)) continue;
      for (Type t :
           {Type::kQ4_K, Type::kQ6_K, Type::kQ8_0, Type::kQ5_0, Type::kBF16, Type::kQ5_K}) {
        if (!only_type.empty() && only_type != ggml::traits(t).name) continue;
        if (only_type.empty() && t == Type::kQ5_K) continue;  // --type q5_K only
        for (auto [K, N] :
             {std::pair<int64_t, int64_t>{896, 4864}, {4864, 896}, {1536, 8960}, {8960, 1536}}) {
          if (ggml::traits(t).block_elems == 256 && K % 256 != 0) continue;
          if (quick && T == 128 && K > 4864) continue;
          bench_shape(pool, *k, t, K, N, T, rng, quick, hot);
        }
      }
    }
    if (!only_type.empty() || prefill_only) continue;
    bench_qwen05_decode(pool, *k, rng, false);
    bench_qwen05_decode(pool, *k, rng, true);
  }
  return 0;
}
