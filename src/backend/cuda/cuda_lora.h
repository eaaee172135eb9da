// Batched multi-LoRA on the CUDA backend (issue 29), the host side of KernelOps::lora_begin /
// lora_add: operand checks, the split-K scratch, and the overlap of a linear's LoRA shrink with its
// base GEMM. lora_begin issues the shrink (which reads only x) on a second stream, forked from the
// backend's stream and joined back by lora_add before the expand, so inside a captured CUDA graph
// the shrink is a branch beside the GEMM; lora_add alone runs both on the backend's stream. Steps
// of a few rows (decode) skip the fork (lora_fork_shrink): their shrink is short and the expand
// overlaps it as its programmatic dependent. The kernels are lora.cu's.
#pragma once

#include "backend/cuda/cuda_common.h"

namespace inferd::cuda_impl {

class CudaLora {
 public:
  explicit CudaLora(CudaContext& ctx) : ctx_(ctx) {}
  ~CudaLora();
  CudaLora(const CudaLora&) = delete;
  CudaLora& operator=(const CudaLora&) = delete;

  // The scratch for steps of at most c.max_tokens rows and c.max_lora_columns rank columns, and
  // the side stream (nothing when LoRA is off).
  void reserve(const StepCapacity& c);
  void begin(const Tensor& x, const LoraLinear& w, const DeviceBatch& b);
  void add(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, Tensor out);

 private:
  struct Plan {
    Mat x;
    int32_t rows = 0, tiles = 0, splits = 0;
  };
  Plan plan(const Tensor& x, const LoraLinear& w, const DeviceBatch& b) const;
  void shrink(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, const Plan& p,
              cudaStream_t stream);

  CudaContext& ctx_;
  int32_t max_tokens_ = 0;
  Tensor tmp_;      // the shrink's split-K partial sums, fp32
  Tensor tickets_;  // the shrink's split tickets, int32, zero between launches
  cudaStream_t side_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  // The shrink begin() issued and add() has not consumed yet.
  const LoraLinear* pending_w_ = nullptr;
  const void* pending_x_ = nullptr;
};

}  // namespace inferd::cuda_impl
