// CUDA benchmark of int4 weights (issue 28): time per call, weight GB/s and TFLOP/s of the
// backend's `linear_int4` (the tensor-core GEMM of int4_gemm.cu below kInt4DequantMinTokens rows,
// dequantize-to-bf16 + cuBLASLt above; group 128, with and without an act-order permutation)
// against the dense bf16 `linear` (cuBLASLt) at the Llama-3.1-8B projection shapes for T = 1, 16,
// 32, 48, 64, 256 and 1024 tokens, with the int4 / bf16 ratio. Each call is timed from a CUDA graph of
// many calls. Prints a table; asserts nothing. Needs a GPU.
//   cuda_int4_bench [--device N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda_bench_util.h"

using namespace inferd;
using bench::time_per_call;

namespace {

// An act-order copy of a random int4 weight: the host canonical form with a reversed permutation.
Int4Linear act_order_weight(Backend& gpu, int64_t N, int64_t K) {
  Int4Linear h;
  h.in_features = K;
  h.out_features = N;
  h.group_size = 128;
  h.qweight = Tensor::empty_host(DType::kI32, {N, K / 8});
  for (int64_t i = 0; i < N * K / 8; ++i)
    h.qweight.data_as<uint32_t>()[i] = uint32_t(i * 2654435761u);
  h.scales = Tensor::empty_host(DType::kF32, {K / 128, N});
  h.zeros = Tensor::empty_host(DType::kF32, {K / 128, N});
  for (int64_t i = 0; i < N * K / 128; ++i) {
    h.scales.data_as<float>()[i] = 0.004f;
    h.zeros.data_as<float>()[i] = 8.0f;
  }
  h.perm = Tensor::empty_host(DType::kI32, {K});
  for (int64_t k = 0; k < K; ++k) h.perm.data_as<int32_t>()[k] = int32_t(K - 1 - k);
  return gpu.make_linear_int4(h);
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 0;
  std::unique_ptr<Backend> gpu =
      bench::open_cuda_bench(argc, argv, "cuda_int4_bench [--device N]", &rc);
  if (!gpu) return rc;
  StepCapacity cap;
  cap.max_tokens = 1024;
  cap.max_blocks_per_seq = 1;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  const std::vector<int32_t> tokens = {1, 16, 32, 48, 64, 256, 1024};
  std::printf("%s\n%7s %6s %5s %11s %11s %11s %9s %9s %9s %7s\n", gpu->name().c_str(), "N", "K",
              "T", "bf16 us", "int4 us", "int4-ao us", "bf16 TF/s", "int4 TF/s", "int4 GB/s",
              "ratio");
  int32_t key = 6000;
  for (const auto& [N, K] : shapes) {
    const int64_t wshape[2] = {N, K};
    const Linear dense =
        gpu->make_linear({cuda_random_tensor(*gpu, DType::kBF16, wshape, 7, 0.02f)}, Tensor());
    const Int4Linear q = gpu->random_linear_int4(N, K, 128, 9, 0.02f, Tensor());
    const Int4Linear qa = act_order_weight(*gpu, N, K);
    gpu->reserve(cap);
    const double wbytes = double(N) * double(K) / 2 + double(N) * double(K) / 128 * 4;
    for (int32_t T : tokens) {
      const int64_t xs[2] = {T, K};
      Tensor dx = cuda_random_tensor(*gpu, DType::kBF16, xs, 11, 1.0f);
      Tensor dout = gpu->alloc(DType::kBF16, {T, N});
      const double sb = time_per_call(
          *gpu, [&] { gpu->linear(dx, dense, dout); }, key++);
      const double sq = time_per_call(
          *gpu, [&] { gpu->linear_int4(dx, q, dout); }, key++);
      const double sa = time_per_call(
          *gpu, [&] { gpu->linear_int4(dx, qa, dout); }, key++);
      const double flop = 2.0 * double(T) * double(N) * double(K);
      std::printf("%7lld %6lld %5d %11.2f %11.2f %11.2f %9.1f %9.1f %9.1f %7.2f\n", (long long)N,
                  (long long)K, T, sb * 1e6, sq * 1e6, sa * 1e6, flop / sb / 1e12, flop / sq / 1e12,
                  wbytes / sq / 1e9, sb / sq);
      std::fflush(stdout);
    }
  }
  return 0;
}
