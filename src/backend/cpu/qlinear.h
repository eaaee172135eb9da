// A linear layer whose weights are GGUF block types (core/ggml_types.h), on the CPU: the
// activations are quantized once to the weight type's activation format (Kernels::act_type), then
// the output rows are split over the pool's threads (Kernels::qgemm).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/ggml_types.h"
#include "core/thread_pool.h"

namespace inferd::cpu {

// The input rows x [T, K] quantized for weights of `wtype` into `buf` (grown when too small; rows
// split over the pool when T > 1): what qlinear and the CPU backend's GGUF linears run on.
const uint8_t* quantize_rows(ThreadPool& pool, const Kernels& k, ggml::Type wtype, const float* x,
                             int64_t T, int64_t K, std::vector<uint8_t>& buf);
// Bytes of T rows of K activations quantized for weights of `wtype` (0 when it has no
// quantized path: k.act_type(wtype) == kF32).
int64_t qlinear_scratch_bytes(const Kernels& k, ggml::Type wtype, int64_t T, int64_t K);

// out[t * ldo + n] = sum_k x[t * K + k] * W[n, k] (+ bias[n]) for t < T, n < N. W is N rows of
// `wtype` blocks (row n at W + n * row_bytes(wtype, K)); k.act_type(wtype) must not be kF32 and K
// must be a multiple of the type's block. `scratch` holds the quantized x (grown when too small;
// size it once with qlinear_scratch_bytes to allocate nothing per call). Results do not depend on
// T nor on the number of threads.
void qlinear(ThreadPool& pool, const Kernels& k, const float* x, int64_t T, int64_t K,
             const void* W, ggml::Type wtype, const float* bias, int64_t N, float* out, int64_t ldo,
             std::vector<uint8_t>& scratch);

}  // namespace inferd::cpu
