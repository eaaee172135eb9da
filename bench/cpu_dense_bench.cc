// CPU dense-GEMM benchmark: Kernels::gemm with bf16 / f16 weights and fp32 activations at the
// shapes of Qwen2.5-0.5B (K=896/4864, N=896/4864/151936), decode (T=1) and prefill (T=128), on 1
// and 2 threads, split over output rows as CpuBackend::linear splits them. Prints weight GB/s and
// GFLOP/s. Decode cycles through copies of the weights totalling > 256 MiB so that they come from
// memory, as in a model's decode step. Last, the linear layers of one decode step of Qwen2.5-0.5B
// (q/k/v, o, gate/up, down x 24 and the 151936-row lm_head) as tokens/s of the linears alone.
//   cpu_dense_bench [--isa NAME] [--threads N] [--dtype bf16|f16] [--decode-only] [--step-only]
//                   [--quick] [--huge (weights in transparent huge pages)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/mman.h>

#include "backend/cpu/kernels.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "core/thread_pool.h"

using namespace inferd;
using clock_type = std::chrono::steady_clock;

namespace {

bool g_huge = false;  // --huge: weights in transparent huge pages (madvise)

// Page-aligned storage for weights, optionally advised into transparent huge pages.
struct Buffer {
  uint16_t* p = nullptr;
  size_t n = 0;
  explicit Buffer(size_t count) : n(count) {
    const size_t bytes = (count * 2 + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1);
    p = static_cast<uint16_t*>(std::aligned_alloc(size_t(2) << 20, bytes));
    if (g_huge) madvise(p, bytes, MADV_HUGEPAGE);
  }
  Buffer(Buffer&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr; }
  Buffer(const Buffer&) = delete;
  ~Buffer() { std::free(p); }
  size_t size() const { return n; }
  uint16_t* data() const { return p; }
  uint16_t& operator[](size_t i) const { return p[i]; }
};

struct Weights {
  int64_t K, N;
  Buffer h;  // N rows of K, bf16 or f16 bits
};

Weights make_weights(DType t, int64_t K, int64_t N, Rng& rng) {
  Weights w{K, N, Buffer(size_t(N * K))};
  // 4096 random values repeated (filling hundreds of MB from the generator would take long).
  std::vector<uint16_t> pool(4096);
  for (auto& v : pool) {
    const float f = float(rng.normal()) * 0.05f;
    v = t == DType::kBF16 ? f32_to_bf16(f) : f32_to_f16(f);
  }
  for (size_t i = 0; i < w.h.size(); ++i) w.h[i] = pool[(i * 7 + i / 4096) % 4096];
  return w;
}

void run_gemm(ThreadPool& pool, const cpu::Kernels& k, DType t, const float* x, int64_t T,
              const Weights& w, float* out) {
  pool.parallel_for(
      w.N,
      [&](int64_t n0, int64_t n1, int) {
        k.gemm(x, T, w.K, w.h.data(), t, nullptr, n0, n1, out, w.N);
      },
      16);
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

void bench_shape(ThreadPool& pool, const cpu::Kernels& k, DType t, int64_t K, int64_t N, int64_t T,
                 Rng& rng, bool quick) {
  const int64_t bytes_one = 2 * K * N;
  const int64_t copies = T == 1 ? std::max<int64_t>(1, (int64_t(256) << 20) / bytes_one + 1) : 1;
  std::vector<Weights> ws;
  for (int64_t c = 0; c < copies; ++c) ws.push_back(make_weights(t, K, N, rng));
  std::vector<float> x(static_cast<size_t>(T * K)), out(static_cast<size_t>(T * N));
  for (auto& v : x) v = float(rng.normal());
  run_gemm(pool, k, t, x.data(), T, ws[0], out.data());  // warm up
  // Rounds of passes over the copies; the best round counts (the machine is shared).
  const double budget = quick ? 0.15 : 0.5;
  const int64_t per_round = std::max<int64_t>(copies, T == 1 ? 8 : 1);
  double per = 1e30;
  const auto t0 = clock_type::now();
  for (int round = 0; round < 3 || seconds_since(t0) < budget; ++round) {
    const auto r0 = clock_type::now();
    for (int64_t r = 0; r < per_round; ++r)
      run_gemm(pool, k, t, x.data(), T, ws[size_t(r % copies)], out.data());
    per = std::min(per, seconds_since(r0) / double(per_round));
  }
  std::printf("%-4s K=%5lld N=%6lld T=%3lld thr=%d  %9.1f us  %6.2f GB/s  %7.1f GFLOP/s\n",
              t == DType::kBF16 ? "bf16" : "f16", (long long)K, (long long)N, (long long)T,
              pool.num_threads(), per * 1e6, double(bytes_one) / per * 1e-9,
              2.0 * double(T * N * K) / per * 1e-9);
}

// The cost of one parallel_for that does nothing.
void bench_pool(ThreadPool& pool) {
  std::vector<int64_t> partial(64, 0);
  const int reps = 20000;
  const auto t0 = clock_type::now();
  for (int r = 0; r < reps; ++r)
    pool.parallel_for(64, [&](int64_t, int64_t, int tid) { partial[size_t(tid)]++; });
  std::printf("threads %d: empty parallel_for %.1f us%s\n", pool.num_threads(),
              seconds_since(t0) / reps * 1e6, partial[0] == 0 ? "?" : "");
}

// The linear layers of one decode step of Qwen2.5-0.5B.
void bench_qwen05_decode(ThreadPool& pool, const cpu::Kernels& k, DType t, Rng& rng) {
  std::vector<Weights> ws;
  double bytes = 0;
  for (int l = 0; l < 24; ++l) {
    auto add = [&](int64_t K, int64_t N) {
      ws.push_back(make_weights(t, K, N, rng));
      bytes += double(ws.back().h.size() * 2);
    };
    add(896, 896 + 2 * 128);  // q, k, v
    add(896, 896);            // o
    add(896, 2 * 4864);       // gate, up
    add(4864, 896);           // down
  }
  ws.push_back(make_weights(t, 896, 151936, rng));
  bytes += double(ws.back().h.size() * 2);
  std::vector<float> x(static_cast<size_t>(9728)), out(static_cast<size_t>(151936));
  for (auto& v : x) v = float(rng.normal());
  auto step = [&] {
    for (const Weights& w : ws) run_gemm(pool, k, t, x.data(), 1, w, out.data());
  };
  step();
  double per = 1e30;
  const auto t0 = clock_type::now();
  for (int reps = 0; reps < 5 || seconds_since(t0) < 1.0; ++reps) {
    const auto r0 = clock_type::now();
    step();
    per = std::min(per, seconds_since(r0));
  }
  std::printf("qwen2.5-0.5B %s linears thr=%d, decode step: %.2f ms, %.1f tok/s, %.2f GB/s\n",
              t == DType::kBF16 ? "bf16" : "f16", pool.num_threads(), per * 1e3, 1.0 / per,
              bytes / per * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  std::string isa;
  int threads = 0;
  bool quick = false, decode_only = false, step_only = false;
  std::vector<DType> types{DType::kBF16, DType::kF16};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) isa = argv[++i];
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--dtype") && i + 1 < argc)
      types = {std::strcmp(argv[++i], "f16") == 0 ? DType::kF16 : DType::kBF16};
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--huge")) g_huge = true;
    if (!std::strcmp(argv[i], "--decode-only")) decode_only = true;
    if (!std::strcmp(argv[i], "--step-only")) step_only = true;
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
    bench_pool(pool);
    for (DType t : types) {
      for (int64_t T : {1, 128}) {
        if ((T == 128 && decode_only) || step_only) continue;
        for (auto [K, N] :
             {std::pair<int64_t, int64_t>{896, 896}, {896, 4864}, {4864, 896}, {896, 151936}}) {
          if (quick && T == 128 && N > 4864) continue;
          bench_shape(pool, *k, t, K, N, T, rng, quick);
        }
      }
      bench_qwen05_decode(pool, *k, t, rng);
    }
  }
  return 0;
}
