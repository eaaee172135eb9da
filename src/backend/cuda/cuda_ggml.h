// GGUF block weights on the CUDA backend (issue 35): placement, each part's blocks uploaded once
// in the slot layout of ggml_blocks.h (float parts as bf16), and linear_ggml: the GEMV of
// ggml_gemv.cu for up to kGgmlGemvMaxTokens rows, above that each part dequantized to bf16 in row
// chunks into one scratch buffer (sized once, at placement and reserve()) and multiplied by the
// cuBLASLt GEMM. Nothing is allocated per step once reserve() ran.
#pragma once

#include <vector>

#include "backend/backend_types.h"
#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_gemm.h"
#include "backend/cuda/cuda_weights.h"

namespace inferd::cuda_impl {

class CudaGgml {
 public:
  // The dequantization scratch holds at most this many bf16 values (a part of more rows is
  // dequantized and multiplied in row chunks).
  static constexpr int64_t kScratchMaxElems = int64_t(32) << 20;

  CudaGgml(CudaContext& ctx, CudaWeights& weights, CudaGemm& gemm)
      : ctx_(ctx), weights_(weights), gemm_(gemm) {}

  static bool supports(ggml::Type t);
  GgmlLinear make_linear(std::vector<GgmlLinear::Part> parts, const Tensor& bias);
  void linear(const Tensor& x, const GgmlLinear& w, Tensor out);
  // Allocates the dequantization scratch for the parts placed so far (start-up).
  void reserve();

 private:
  GgmlLinear::Part place_blocks(const GgmlLinear::Part& p, int64_t in_features);
  void ensure_scratch();

  CudaContext& ctx_;
  CudaWeights& weights_;
  CudaGemm& gemm_;
  int64_t scratch_need_ = 0;  // bf16 elements
  Tensor scratch_;
};

}  // namespace inferd::cuda_impl
