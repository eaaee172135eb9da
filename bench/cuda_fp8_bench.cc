// CUDA benchmark of the FP8 decode GEMV (issue 24: >= 80 % of the copy bandwidth for <= 8 rows):
// time per call and weight GB/s of each kernel of cuda::launch_fp8_gemv (set_fp8_gemv_variant)
// and of cuBLASLt's FP8 GEMM with the inputs quantized per row (v5) against the dense bf16
// `linear` (cuBLASLt, and the bf16 GEMV: cuda::launch_bf16_gemv) at the Llama-3.1-8B projection
// shapes for T = 1, 2, 4 and 8 tokens, and the GEMV variants' largest difference from variant 0.
// The weights are cycled through enough copies (>= 160 MB) that no call finds them in L2. Each
// call is timed from a CUDA graph of many calls. Prints a table; asserts nothing. Needs a GPU.
//   cuda_fp8_bench [--device N]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/fp8.h"
#include "cuda_bench_util.h"

using namespace inferd;
using bench::time_per_call;

int main(int argc, char** argv) {
  int rc = 0;
  std::unique_ptr<Backend> gpu =
      bench::open_cuda_bench(argc, argv, "cuda_fp8_bench [--device N]", &rc);
  if (!gpu) return rc;
  StepCapacity cap;
  cap.max_tokens = 64;
  cap.max_blocks_per_seq = 1;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  const std::vector<int32_t> tokens = {1, 2, 4, 8};
  constexpr double kMinBytes = 160e6;
  std::printf("%s\n%7s %6s %3s %10s %9s %10s %9s", gpu->name().c_str(), "N", "K", "T", "bf16 us",
              "bf16 GB/s", "bgemv us", "bgemv GB/s");
  for (int v = 0; v < cuda::kFp8GemvVariants; ++v) std::printf("    v%d us  v%d GB/s", v, v);
  std::printf("  GEMVs max|v-v0|/max|v0|\n");
  int32_t key = 7000;
  for (const auto& [N, K] : shapes) {
    const int64_t wshape[2] = {N, K};
    const double fp8_bytes = double(N) * double(K) + double(N) * 4;
    const double bf16_bytes = double(N) * double(K) * 2;
    const int nd = int(std::ceil(kMinBytes / bf16_bytes)),
              nq = int(std::ceil(kMinBytes / fp8_bytes));
    std::vector<Linear> dense;
    std::vector<Fp8Linear> q;
    for (int i = 0; i < std::max(nd, nq); ++i) {
      Linear d = gpu->make_linear({cuda_random_tensor(*gpu, DType::kBF16, wshape, 7 + i, 0.02f)},
                                  Tensor());
      q.push_back(gpu->quantize_linear_fp8(d));
      if (i < nd) dense.push_back(std::move(d));
    }
    q.resize(size_t(nq));
    gpu->reserve(cap);
    for (int32_t T : tokens) {
      const int64_t xs[2] = {T, K};
      Tensor dx = cuda_random_tensor(*gpu, DType::kBF16, xs, 11, 1.0f);
      Tensor dout = gpu->alloc(DType::kBF16, {T, N});
      Tensor f32_out = gpu->alloc(DType::kF32, {T, N});
      size_t i = 0;
      const int gemv_before = cuda::set_bf16_gemv_max_tokens(0);  // cuBLASLt
      const double sb = time_per_call(
          *gpu, [&] { gpu->linear(dx, dense[i++ % dense.size()], dout); }, key++);
      cuda::set_bf16_gemv_max_tokens(cuda::kFp8GemvMaxTokens);  // the bf16 GEMV
      i = 0;
      const double sg = time_per_call(
          *gpu, [&] { gpu->linear(dx, dense[i++ % dense.size()], dout); }, key++);
      cuda::set_bf16_gemv_max_tokens(gemv_before);
      std::printf("%7lld %6lld %3d %10.2f %9.0f %10.2f %9.0f", (long long)N, (long long)K, T,
                  sb * 1e6, bf16_bytes / sb / 1e9, sg * 1e6, bf16_bytes / sg / 1e9);
      std::vector<float> ref;
      double worst = 0;
      for (int v = 0; v < cuda::kFp8GemvVariants; ++v) {
        const int before = cuda::set_fp8_gemv_variant(v);
        i = 0;
        const double sq = time_per_call(
            *gpu, [&] { gpu->linear_fp8(dx, q[i++ % q.size()], dout); }, key++);
        gpu->linear_fp8(dx, q[0], f32_out);
        const Tensor got = cuda_download_f32(*gpu, f32_out);
        cuda::set_fp8_gemv_variant(before);
        const float* g = got.data_as<float>();
        if (v == 0) {
          ref.assign(g, g + got.numel());
        } else if (v != cuda::kFp8GemvCublas) {
          double d = 0, m = 0;
          for (size_t j = 0; j < ref.size(); ++j) {
            d = std::max(d, double(std::fabs(g[j] - ref[j])));
            m = std::max(m, double(std::fabs(ref[j])));
          }
          worst = std::max(worst, d / std::max(m, 1e-30));
        }
        std::printf(" %9.2f %8.0f", sq * 1e6, fp8_bytes / sq / 1e9);
      }
      std::printf("  %.1e\n", worst);
      std::fflush(stdout);
    }
  }
  return 0;
}
