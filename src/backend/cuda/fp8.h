// FP8 (float8 e4m3fn) kernels of the CUDA backend: quantization of bf16 rows with one scale per
// row (activations per token before an FP8 GEMM; weights per output channel at load). Plain C++
// header (see kernels.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace inferd::cuda {

// For each row r of x (bf16 [rows, cols], row stride ld_x): scale[r] = max |x[r, :]| / 448 (or
// static_scale when > 0), q[r, c] = e4m3(x[r, c] / scale[r]) rounded to nearest even and
// saturated to +-448. q is [rows, cols] with row stride ld_q (bytes = elements).
cudaError_t launch_quantize_rows_fp8(const void* x, int64_t ld_x, int64_t rows, int64_t cols,
                                     uint8_t* q, int64_t ld_q, float* scales, float static_scale,
                                     cudaStream_t stream);

// Decode-sized FP8 linear without quantizing the input: out[t, n] = (sum_k x[t, k] * f8(w[n, k]))
// * w_scale[n] (+ bias[n]) for t < num_tokens <= kFp8GemvMaxTokens; x bf16 [T, K] (ld_x), w
// float8 [N, K] (row stride K), out bf16 or fp32 [T, N] (ld_out). K must be a multiple of 16 and
// x 16-byte aligned with ld_x a multiple of 8 (returns cudaErrorInvalidValue otherwise).
constexpr int kFp8GemvMaxTokens = 8;
cudaError_t launch_fp8_gemv(const void* x, int64_t ld_x, int32_t num_tokens, const uint8_t* w,
                            const float* w_scale, const float* bias, int64_t n, int64_t k,
                            void* out, int64_t ld_out, bool out_f32, cudaStream_t stream);

// The GEMV's kernel (bench/cuda_fp8_bench compares them; one process-wide choice, returns the
// previous): 0, one warp per row with 4 loads of 16 bytes in flight a lane; 1, one row a warp
// with 8 loads; 2, two rows a warp with 4 loads each; 3, four rows a warp with 2 loads each
// (1..3 instantiated for at most 1, 2, 4 and 8 tokens); 4, tensor cores (16 rows a block of 8
// warps splitting K, mma.m16n8k16 with the tokens as N; for a row count that is not a multiple of
// 16, variant 3); kFp8GemvCublas: no GEMV, the inputs quantized per row for cuBLASLt's FP8 GEMM at
// every row count (CudaGemm::linear_fp8); kFp8GemvAuto (the default): 3 for one token, 4 for
// more. Out of range: the default.
constexpr int kFp8GemvVariants = 7;
constexpr int kFp8GemvCublas = 5;
constexpr int kFp8GemvAuto = 6;
constexpr int kFp8GemvDefaultVariant = kFp8GemvAuto;
int set_fp8_gemv_variant(int variant);
int fp8_gemv_variant();

// The same GEMV over bf16 weights [N, K] (variant 3's shape, no scale): out = x W^T (+ bias) for
// num_tokens <= kFp8GemvMaxTokens; K a multiple of 8, x and W 16-byte aligned, ld_x a multiple of
// 8. CudaGemm::linear takes it instead of cuBLASLt for at most bf16_gemv_max_tokens() rows:
// kBf16GemvDefaultMaxTokens, or INFERD_CUDA_BF16_GEMV (0: cuBLASLt always); set_... returns the
// previous value (benchmarks).
cudaError_t launch_bf16_gemv(const void* x, int64_t ld_x, int32_t num_tokens, const void* w,
                             const float* bias, int64_t n, int64_t k, void* out, int64_t ld_out,
                             bool out_f32, cudaStream_t stream);
constexpr int kBf16GemvDefaultMaxTokens = 1;
int bf16_gemv_max_tokens();
int set_bf16_gemv_max_tokens(int max_tokens);

}  // namespace inferd::cuda
