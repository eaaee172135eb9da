// Weight placement for the CUDA backend (start-up only): host tensors (mmap views or owned, any
// float dtype) converted to bf16 / fp32 through two pinned staging halves (the host converts one
// chunk while the previous one is copied), linear parts concatenated on the device, FP8 weights
// placed as stored or quantized per output channel on the device, seeded random tensors for
// --load-format dummy, and the tied-embedding reuse (an lm_head naming the embedding's bytes gets
// the table already uploaded).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend_types.h"
#include "backend/cuda/cuda_common.h"

namespace inferd::cuda_impl {

class CudaWeights {
 public:
  CudaWeights(CudaContext& ctx, size_t staging_bytes);
  ~CudaWeights();
  CudaWeights(const CudaWeights&) = delete;
  CudaWeights& operator=(const CudaWeights&) = delete;

  Tensor make_param(const Tensor& host);
  Linear make_linear(std::vector<Tensor> parts, const Tensor& bias);
  Fp8Linear make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales,
                            const Tensor& bias, float act_scale);
  Fp8Linear quantize_linear_fp8(const Linear& src);
  Tensor random_tensor(DType dtype, std::span<const int64_t> shape, uint64_t seed, float stddev,
                       float fill);
  void fill_random(const Tensor& t, uint64_t seed, float stddev, float fill);
  // A contiguous device copy of a host float tensor in `dtype` (f32, bf16 or f16).
  Tensor upload(const Tensor& host, DType dtype);
  // Every byte of a (contiguous or row-strided 2-D) device tensor set to 0xFF.
  void poison(const Tensor& t);
  // fp32 device copy of a 1-D parameter (host or device, any float dtype).
  Tensor place_vector(const Tensor& v);
  // Host tensor (contiguous, any float dtype) -> device memory `dst` in `dst_dtype`, through the
  // pinned staging halves (MoE experts stacked expert by expert).
  void upload_into(const Tensor& host, void* dst, DType dst_dtype);
  // Drops the embedding table kept for a tied lm_head (sleep level 2 frees the weights).
  void forget_cached() {
    embed_src_ = nullptr;
    embed_holder_.reset();
    embed_dev_ = Tensor();
  }

 private:
  CudaContext& ctx_;
  size_t staging_half_ = 0;
  void* staging_[2] = {nullptr, nullptr};
  cudaEvent_t staging_ev_[2] = {nullptr, nullptr};
  // The last embedding table placed by make_param, so a tied lm_head naming the same mmap'd bytes
  // reuses it; the weak holder tells whether those bytes are still the same allocation.
  const void* embed_src_ = nullptr;
  DType embed_src_dtype_ = DType::kF32;
  std::weak_ptr<void> embed_holder_;
  Tensor embed_dev_;
};

}  // namespace inferd::cuda_impl
