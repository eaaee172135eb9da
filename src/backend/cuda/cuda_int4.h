// Int4 weights on the CUDA backend (issue 28): placement of the canonical Int4Linear
// (backend_types.h) in the tile layout of int4_gemm.h (repacked once on the host; dummy weights
// drawn on the device in that layout), and linear_int4: the act-order gather of the input columns
// (when the weight has a permutation), then the tensor-core GEMM of int4_gemm.cu for up to
// kInt4DequantMinTokens rows, above that the weight dequantized to bf16 in row chunks into one
// scratch buffer and multiplied by cuBLASLt. The buffers are sized at placement and reserve();
// nothing is allocated per step once reserve() ran.
#pragma once

#include "backend/backend_types.h"
#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_gemm.h"
#include "backend/cuda/cuda_weights.h"

namespace inferd::cuda_impl {

class CudaInt4 {
 public:
  // The dequantization scratch holds at most this many bf16 values.
  static constexpr int64_t kScratchMaxElems = int64_t(32) << 20;

  CudaInt4(CudaContext& ctx, CudaWeights& weights, CudaGemm& gemm)
      : ctx_(ctx), weights_(weights), gemm_(gemm) {}

  static bool supports(int64_t out_features, int64_t in_features, int64_t group_size);
  Int4Linear make_linear(const Int4Linear& host);
  Int4Linear random_linear(int64_t n, int64_t k, int64_t group_size, uint64_t seed, float stddev,
                           const Tensor& bias);
  void linear(const Tensor& x, const Int4Linear& w, Tensor out);
  // Allocates the gather buffer for max_tokens rows and the dequantization scratch (start-up).
  void reserve(int32_t max_tokens);

 private:
  void note_shape(int64_t n, int64_t k, bool perm);
  void ensure_buffers(int64_t tokens);

  CudaContext& ctx_;
  CudaWeights& weights_;
  CudaGemm& gemm_;
  int64_t max_perm_k_ = 0;     // widest input of a weight with a permutation
  int64_t scratch_need_ = 0;   // bf16 elements of the dequantization scratch
  int64_t gather_tokens_ = 0;  // rows the gather buffer holds
  Tensor gather_, scratch_;
};

}  // namespace inferd::cuda_impl
