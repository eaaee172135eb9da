// CUDA benchmark of GGUF block weights (issue 35): time per call and weight GB/s of the backend's
// `linear_ggml` (the tensor-core GEMV up to 16 rows, dequantize-to-bf16 + cuBLASLt above) for
// Q4_K, Q6_K, Q5_K, Q8_0, Q5_0 and Q4_0, and of the dense bf16 `linear` for comparison, at the
// Llama-3.1-8B projection shapes and T = 1..512 tokens. Each call is timed from a CUDA graph of
// many calls (launch gaps included, as in a decode step). Prints a table; asserts nothing.
//   cuda_ggml_bench [--device N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/ggml_types.h"
#include "core/rng.h"
#include "cuda_bench_util.h"

using namespace inferd;
using bench::time_per_call;

namespace {

// [rows, k] blocks of `type`: 64 random rows (N(0, 1) * 0.05) quantized, repeated (timing needs
// only the bytes).
std::vector<uint8_t> random_blocks(ggml::Type type, int64_t rows, int64_t k, Rng& rng) {
  const int64_t rb = ggml::row_bytes(type, k), distinct = std::min<int64_t>(rows, 64);
  std::vector<uint8_t> bytes(size_t(rows * rb));
  std::vector<float> x(static_cast<size_t>(k));
  for (int64_t r = 0; r < distinct; ++r) {
    for (float& v : x) v = float(rng.normal() * 0.05);
    ggml::quantize_row(type, x.data(), bytes.data() + r * rb, k);
  }
  for (int64_t r = distinct; r < rows; ++r)
    std::memcpy(bytes.data() + r * rb, bytes.data() + (r % distinct) * rb, size_t(rb));
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 0;
  std::unique_ptr<Backend> gpu =
      bench::open_cuda_bench(argc, argv, "cuda_ggml_bench [--device N]", &rc);
  if (!gpu) return rc;
  Rng rng(35);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
  const std::vector<int32_t> tokens = {1, 4, 8, 16, 64, 512};
  const std::vector<std::pair<const char*, ggml::Type>> types = {
      {"q4_K", ggml::Type::kQ4_K}, {"q6_K", ggml::Type::kQ6_K}, {"q5_K", ggml::Type::kQ5_K},
      {"q8_0", ggml::Type::kQ8_0}, {"q5_0", ggml::Type::kQ5_0}, {"q4_0", ggml::Type::kQ4_0},
      {"bf16", ggml::Type::kBF16}};
  std::printf("%s\n%-6s %7s %6s %5s %10s %9s\n", gpu->name().c_str(), "type", "N", "K", "T",
              "us/call", "GB/s");
  int32_t key = 5000;
  for (const auto& [N, K] : shapes) {
    for (const auto& [name, type] : types) {
      const bool dense = type == ggml::Type::kBF16;
      const int64_t wshape[2] = {N, K};
      Linear dense_w;
      GgmlLinear gl;
      std::vector<uint8_t> blocks;
      double bytes = double(N) * double(K) * 2;
      if (dense) {
        dense_w =
            gpu->make_linear({cuda_random_tensor(*gpu, DType::kBF16, wshape, 7, 0.05f)}, Tensor());
      } else {
        blocks = random_blocks(type, N, K, rng);
        const int64_t rb = ggml::row_bytes(type, K);
        gl = gpu->make_linear_ggml({{Tensor(blocks.data(), DType::kU8, {N, rb}), type, N}},
                                   Tensor());
        bytes = double(N) * double(rb);
      }
      for (int32_t T : tokens) {
        const int64_t xs[2] = {T, K};
        Tensor dx = cuda_random_tensor(*gpu, DType::kBF16, xs, 11, 1.0f);
        Tensor dout = gpu->alloc(DType::kBF16, {T, N});
        const double s = time_per_call(
            *gpu, [&] { dense ? gpu->linear(dx, dense_w, dout) : gpu->linear_ggml(dx, gl, dout); },
            key++);
        std::printf("%-6s %7lld %6lld %5d %10.2f %9.1f\n", name, (long long)N, (long long)K, T,
                    s * 1e6, bytes / s / 1e9);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
