// The CUDA backend's GEMMs: out [T, N] = x [T, K] W [N, K]^T (+ bias) through cuBLASLt, bf16 or
// FP8 (e4m3, outer-vector scales: per output channel for W, per row for x) in, fp32 accumulate,
// bf16 or fp32 out. One plan per shape (and alignment); while tuning is on (the warm-up of the
// shapes CUDA graphs replay) the heuristic's candidates are timed once on the real operands and
// the fastest kept, otherwise its first choice. FP8 linears of up to kFp8GemvMaxTokens rows use
// the FP8 GEMV (fp8.cu); above, the input rows are quantized per row into a buffer sized once.
#pragma once

#include <cublasLt.h>

#include <algorithm>
#include <array>
#include <map>
#include <span>
#include <utility>

#include "backend/backend_types.h"
#include "backend/cuda/cuda_common.h"

namespace inferd::cuda_impl {

class CudaGemm {
 public:
  CudaGemm(CudaContext& ctx, size_t workspace_bytes);
  ~CudaGemm();
  CudaGemm(const CudaGemm&) = delete;
  CudaGemm& operator=(const CudaGemm&) = delete;

  void linear(const Tensor& x, const Linear& w, Tensor out);
  void linear_fp8(const Tensor& x, const Fp8Linear& w, Tensor out);
  // out [T, N] (row stride ld_out, bf16 or fp32) = x [T, K] (bf16, row stride ld_x) W^T for a
  // bf16 device matrix W [N, K] (row stride ld_w); no bias. The GGUF linears' GEMMs (cuda_ggml).
  void matmul(const void* w, int64_t N, int64_t K, int64_t ld_w, const void* x, int64_t T,
              int64_t ld_x, void* out, int64_t ld_out, bool out_f32);
  // An FP8 linear of `in_features` inputs exists: reserve() sizes the quantized-input buffer for
  // the widest.
  void note_fp8_input(int64_t in_features) { fp8_max_k_ = std::max(fp8_max_k_, in_features); }
  void reserve(int32_t max_tokens);
  void set_tuning(bool on) { tuning_ = on; }

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  using PlanKey = std::array<int64_t, 11>;
  // FP8 GEMMs: the per-output-channel weight scales (A) and per-row input scales (B), both fp32
  // vectors (cuBLASLt's outer-vector scaling); null for bf16 GEMMs.
  struct ScalePtrs {
    const void* a;
    const void* b;
  };
  static constexpr int kCandidates = 8;
  static constexpr int kAutotuneReps = 5;

  // x [T, K] bf16 and out [T, N] bf16 / fp32 checked; their matrix views.
  static std::pair<Mat, Mat> operands(const Tensor& x, const Tensor& out, int64_t K, int64_t N);
  void set_scale_pointers(const Plan& p, const ScalePtrs& sp);
  // Row-major out [T, N] = x [T, K] W [N, K]^T, seen column-major: C (N x T, ld ldc) =
  // op(A) (N x K) * B (K x T), where A is W read as a column-major K x N matrix (ld lda) and
  // transposed, and B is x read as a column-major K x T matrix (ld ldb).
  const Plan& plan(int64_t N, int64_t T, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                   bool out_f32, const void* a, const void* b, const void* c, const ScalePtrs& sp);
  // Times the heuristic's candidates on the real operands; keeps the fastest in p.algo.
  void autotune(Plan& p, std::span<const cublasLtMatmulHeuristicResult_t> candidates, const void* a,
                const void* b, const void* c);
  void run(const Plan& p, const void* a, const void* b, void* c);
  void add_bias(const Tensor& bias, int64_t T, int64_t N, Tensor out, int64_t ld_out);

  CudaContext& ctx_;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<PlanKey, Plan> plans_;
  bool tuning_ = false;
  int64_t autotuned_shapes_ = 0;
  cudaEvent_t tune_ev_[2] = {nullptr, nullptr};
  int64_t fp8_max_k_ = 0;      // widest input of an FP8 linear
  Tensor act_q_, act_scales_;  // FP8 input rows [max_tokens, fp8_max_k_] and their scales
};

}  // namespace inferd::cuda_impl
