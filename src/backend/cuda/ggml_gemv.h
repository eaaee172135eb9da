// Kernels for GGUF block weights on the CUDA backend (issue 35): the decode GEMV reading the
// blocks as they are and the dequantization to bf16 that prefill GEMMs use. Plain C++ header (see
// kernels.h). Weights are in the device layout of ggml_blocks.h: `rows` rows of k / block_elems
// slots, row stride `row_stride` bytes (a multiple of 16), 16-byte aligned.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/ggml_types.h"

namespace inferd::cuda {

// The types these kernels compute (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K .. Q6_K).
bool ggml_kernel_supported(ggml::Type t);

// out[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n]) for t < num_tokens <= kGgmlGemvMaxTokens, fp32
// accumulation; x bf16 [T, k] (row stride ld_x, a multiple of 8; x 16-byte aligned), out bf16 or
// fp32 [T, rows] (row stride ld_out). cudaErrorInvalidValue for other operands.
constexpr int kGgmlGemvMaxTokens = 16;
cudaError_t launch_ggml_gemv(ggml::Type type, const uint8_t* w, int64_t row_stride, int64_t rows,
                             int64_t k, const void* x, int64_t ld_x, int32_t num_tokens,
                             const float* bias, void* out, int64_t ld_out, bool out_f32,
                             cudaStream_t stream);

// Whether launch_ggml_gemv is the faster path for num_tokens activation rows of this type and k:
// the tensor-core kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL with k % 128 == 0; Q2_K .. Q6_K)
// up to kGgmlGemvMaxTokens, the others up to 8 (beyond: dequantization to bf16 and a GEMM).
bool ggml_gemv_preferred(ggml::Type type, int64_t k, int32_t num_tokens);

// dst bf16 [rows, k] (row stride ld_dst, a multiple of 8; dst 16-byte aligned) = W rounded to
// bf16.
cudaError_t launch_ggml_dequantize_bf16(ggml::Type type, const uint8_t* w, int64_t row_stride,
                                        int64_t rows, int64_t k, void* dst, int64_t ld_dst,
                                        cudaStream_t stream);

}  // namespace inferd::cuda
