// The CPU reference of the mixture-of-experts ops (KernelOps::moe_topk / moe_experts, issue 27):
// routing (softmax and top-k as MoeRouting says) and the experts: the (token, choice) pairs
// grouped by expert (counts, offsets, a stable permutation), each active expert's rows gathered
// and put through gate+up (the CPU GEMM, over all active experts' row blocks at once), the gated
// activation, down, then each token's k outputs summed in choice order with their weights. Every
// output element is computed by the same operations whatever else is in the batch (the GEMM's
// property), so chunked and batched steps match one-at-a-time ones exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/moe_types.h"
#include "core/thread_pool.h"

namespace inferd::cpu {

// logits [T, E] fp32 (rows may be strided) -> ids [T, k] int32, weights [T, k] fp32.
void moe_topk(const Tensor& logits, const MoeRouting& r, Tensor ids, Tensor weights);

// Reused buffers of moe_experts (grown to the largest batch, then no allocation).
struct MoeScratch {
  std::vector<int32_t> counts, offsets, fill, perm, slot_row;
  std::vector<float> xs, gate_up, act, y;
  std::vector<int64_t> tasks;
};

// x [T, H] fp32 (rows may be strided), out [T, H] fp32 contiguous rows; `counts`: [E] int32 to add
// the per-expert token counts to, or undefined.
void moe_experts(ThreadPool& pool, const Kernels& k, const Tensor& x, const MoeExperts& w,
                 const Tensor& ids, const Tensor& weights, Tensor counts, Tensor out,
                 MoeScratch& s);

}  // namespace inferd::cpu
