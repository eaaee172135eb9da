// Launchers of the batched multi-LoRA kernels (issue 29; KernelOps::lora_add on CUDA). Plain C++
// for nvcc and the host compiler alike; device pointers; bf16 buffers as void*; ld* in elements.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace inferd::cuda {

// tmp [T, R] (fp32) = x [T, K] (bf16, row stride ld_x) A_s^T for each row t whose slot
// s = slots[t] >= 0; a [num_slots, R, K] bf16. Rows with slot < 0 are left alone.
cudaError_t launch_lora_shrink(const void* x, int64_t ld_x, const void* a, const int32_t* slots,
                               int32_t num_tokens, int64_t in_features, int64_t rank, float* tmp,
                               cudaStream_t stream);

// out [T, N] (bf16, row stride ld_out) += tmp[t] B_s^T for each row with slot s >= 0, where output
// n of part p (part_end[p-1] <= n < part_end[p]) reads only columns [p * max_rank, +max_rank) of
// tmp and B (b [num_slots, N, R] bf16, zero elsewhere). fp32 sums, one rounding to bf16.
cudaError_t launch_lora_expand(const float* tmp, const void* b, const int32_t* slots,
                               int32_t num_tokens, int64_t out_features, int64_t rank,
                               int64_t max_rank, int32_t num_parts, const int64_t* part_end,
                               void* out, int64_t ld_out, cudaStream_t stream);

}  // namespace inferd::cuda
