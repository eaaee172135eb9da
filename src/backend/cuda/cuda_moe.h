// Mixture-of-experts on the CUDA backend (issue 27): placement of one layer's experts (stacked
// [E, 2F, H] and [E, H, F] in bf16, rounded to FP8 per expert and output row, or MXFP4 blocks and
// scales as the checkpoint packs them), and the host
// side of the MoE ops (operand checks, the decode or batched path, moe.cu's launchers).
#pragma once

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_weights.h"
#include "backend/moe_types.h"

namespace inferd::cuda_impl {

class CudaMoe {
 public:
  CudaMoe(CudaContext& ctx, CudaWeights& weights) : ctx_(ctx), weights_(weights) {}

  MoeExperts make_experts(MoeExpertTensors t, int64_t hidden, int64_t intermediate);
  void quantize_fp8(MoeExperts& w);
  void topk(const Tensor& logits, const MoeRouting& r, Tensor ids, Tensor weights);
  void experts(const Tensor& x, const MoeExperts& w, const Tensor& ids, const Tensor& weights,
               Tensor scratch, Tensor counts, Tensor out);

 private:
  // MXFP4 experts (t.w13_blocks and the rest, host u8): copied as they are.
  void place_mxfp4(const MoeExpertTensors& t, MoeExperts& w);

  CudaContext& ctx_;
  CudaWeights& weights_;
};

}  // namespace inferd::cuda_impl
