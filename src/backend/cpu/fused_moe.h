// The CPU reference of the mixture-of-experts op (KernelOps::fused_moe, issue 27): routing (top-k
// and softmax as MoeParams says), then for each expert the rows routed to it gathered into one
// block, gate_up GEMM (+ bias), the activation, down GEMM (+ bias), and each row's outputs summed
// in its top-k order with the routing weights. fp32 activations; dense experts in f32/bf16/f16
// read in place (the CPU takes MXFP4 experts dequantized at load). Every element is computed by
// the same operations whatever the batch holds, so results do not depend on it.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend_types.h"
#include "backend/cpu/kernels.h"
#include "core/thread_pool.h"

namespace inferd::cpu {

// Scratch reused across calls (grown to the largest batch seen).
struct FusedMoeScratch {
  std::vector<int32_t> ids;       // [T, k] chosen experts
  std::vector<float> weights;     // [T, k] their routing weights
  std::vector<int32_t> order;     // (t * k + j) entries grouped by expert
  std::vector<int32_t> offsets;   // [E + 1] start of each expert's group in `order`
  std::vector<int32_t> fill;      // [E] next free place of each group
  std::vector<float> x, gu, act;  // gathered rows, gate_up and activation of one expert's group
  std::vector<float> y;           // [T * k, out] each (row, slot)'s expert output
};

// Top-k routing of one row of logits [E]: ids [k] (ties: the lower index first) and weights [k].
void moe_route(const float* logits, int64_t num_experts, const MoeParams& p, int32_t* ids,
               float* weights);

// x [T, in] and out [T, hidden] fp32 (rows may be strided), router_logits [T, E] fp32.
void fused_moe(const Kernels& k, ThreadPool& pool, const Tensor& x, const Tensor& router_logits,
               const ExpertLinear& gate_up, const ExpertLinear& down, const MoeParams& p,
               Tensor out, FusedMoeScratch& s);

}  // namespace inferd::cpu
