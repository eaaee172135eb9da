// Int4 weights on the CUDA backend (issue 28): the kernels' weight layout, the mixed-precision
// GEMM (bf16 activations x int4 weights on the tensor cores) and its helpers. Plain C++ header
// (see kernels.h).
//
// The weight layout: int4_layout.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/int4_layout.h"

namespace inferd::cuda {

// From kInt4DequantMinTokens rows on, CudaInt4::linear dequantizes the weight to bf16
// (launch_int4_dequantize_bf16) for a dense cuBLASLt GEMM instead of calling launch_int4_gemm
// (which takes any T). Chosen from H100 timings of the earlier kernels (bench/cuda_int4_bench,
// [6144, 4096]: tensor-core kernel ~19 us at T = 16 and ~59 us at T = 64, growing with T; the
// dequantization ~25 us plus the bf16 GEMM's ~20 us): re-measure the crossover (T = 32, 48) there.
constexpr int32_t kInt4DequantMinTokens = 33;

// out[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n]) for t < T: x bf16 [T, K] (row stride ld_x,
// even; 4-byte aligned), out bf16 or fp32 [T, N] (row stride ld_out). w: the tile layout of
// int4_layout.h; sz: fp16 (scale, zero) pairs [K / group_size, N]. fp32 accumulation.
cudaError_t launch_int4_gemm(const uint32_t* w, const void* sz, int64_t n, int64_t k,
                             int64_t group_size, const void* x, int64_t ld_x, int32_t T,
                             const float* bias, void* out, int64_t ld_out, bool out_f32,
                             cudaStream_t stream);

// dst bf16 [T, K] (row stride K) = x[:, perm]: the act-order gather of the input columns.
cudaError_t launch_int4_gather_columns(const void* x, int64_t ld_x, int32_t T, int64_t k,
                                       const int32_t* perm, void* dst, cudaStream_t stream);

// dst bf16 [rows, K] (row stride K) = output rows [row0, row0 + rows) of W dequantized (rows and
// row0 multiples of 16).
cudaError_t launch_int4_dequantize_bf16(const uint32_t* w, const void* sz, int64_t n, int64_t k,
                                        int64_t group_size, int64_t row0, int64_t rows, void* dst,
                                        cudaStream_t stream);

// --load-format dummy: random words for the [N, K] weight (w: N * K / 8 words) and (scale, zero)
// pairs (scale uniform in [0.5, 1.5] * scale_mean, zero 8).
cudaError_t launch_int4_fill_random(uint32_t* w, void* sz, int64_t n, int64_t k, int64_t group_size,
                                    uint64_t seed, float scale_mean, cudaStream_t stream);

}  // namespace inferd::cuda
