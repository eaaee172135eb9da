// The CUDA backend's GEMMs through cuBLASLt (cuda_gemm.h).
#include "backend/cuda/cuda_gemm.h"

#include <cmath>

#include "backend/cuda/fp8.h"
#include "backend/cuda/kernels.h"

namespace inferd::cuda_impl {

namespace {

void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(fmt::format("cuBLASLt error '{}' from {} at {}:{}", cublasLtGetStatusString(s),
                            what, file, line));
  }
}
#define CUBLAS_CHECK(expr) check_cublas((expr), #expr, __FILE__, __LINE__)

}  // namespace

CudaGemm::CudaGemm(CudaContext& ctx, size_t workspace_bytes) : ctx_(ctx) {
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  workspace_bytes_ = workspace_bytes;
  if (workspace_bytes_ > 0) CU_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  for (auto& e : tune_ev_) CU_CHECK(cudaEventCreate(&e));
}

CudaGemm::~CudaGemm() {
  for (auto& [key, plan] : plans_) {
    (void)cublasLtMatrixLayoutDestroy(plan.a);
    (void)cublasLtMatrixLayoutDestroy(plan.b);
    (void)cublasLtMatrixLayoutDestroy(plan.c);
    (void)cublasLtMatmulDescDestroy(plan.op);
  }
  (void)cublasLtDestroy(lt_);
  if (workspace_) (void)cudaFree(workspace_);
  for (auto& e : tune_ev_) (void)cudaEventDestroy(e);
}

void CudaGemm::reserve(int32_t max_tokens) {
  if (fp8_max_k_ > 0) {  // FP8 linears: the quantized input rows and their scales
    act_q_ = ctx_.alloc(DType::kF8E4M3, std::initializer_list<int64_t>{max_tokens, fp8_max_k_});
    act_scales_ = ctx_.alloc(DType::kF32, std::initializer_list<int64_t>{max_tokens});
  }
}

std::pair<Mat, Mat> CudaGemm::operands(const Tensor& x, const Tensor& out, int64_t K, int64_t N) {
  check_dtype(x, DType::kBF16, "linear x");
  INFERD_CHECK(out.dtype() == DType::kBF16 || out.dtype() == DType::kF32,
               "linear out: dtype {} (expected bf16 or f32)", dtype_name(out.dtype()));
  const Mat xm = as_matrix(x, "linear x"), om = as_matrix(out, "linear out");
  INFERD_CHECK(xm.cols == K && om.cols == N && om.rows == xm.rows,
               "linear shapes x {} W [{}, {}] out {}", x.shape_str(), N, K, out.shape_str());
  return {xm, om};
}

void CudaGemm::linear(const Tensor& x, const Linear& w, Tensor out) {
  const auto [xm, om] = operands(x, out, w.in_features, w.out_features);
  const int64_t T = xm.rows, K = w.in_features, N = w.out_features;
  INFERD_CHECK(w.parts.size() == 1 && w.parts[0].device() == Device::kCUDA &&
                   w.parts[0].dtype() == DType::kBF16 && w.parts[0].size(0) == N,
               "linear weight was not placed by the CUDA backend");
  if (T == 0) return;
  const bool out_f32 = out.dtype() == DType::kF32;
  if (T <= cuda::bf16_gemv_max_tokens() && K % 8 == 0 && xm.ld % 8 == 0 &&
      alignment_of(x.data()) >= 16 && alignment_of(w.parts[0].data()) >= 16 &&
      (!w.bias.defined() || w.bias.dtype() == DType::kF32)) {
    // Decode-sized: the GEMV (one pass over the weights, launched as a programmatic dependent).
    CU_CHECK(cuda::launch_bf16_gemv(x.data(), xm.ld, int32_t(T), w.parts[0].data(),
                                    w.bias.defined() ? w.bias.data_as<float>() : nullptr, N, K,
                                    out.data(), om.ld, out_f32, ctx_.stream()));
    return;
  }
  const Plan& p = plan(N, T, K, K, xm.ld, om.ld, out_f32, w.parts[0].data(), x.data(), out.data(),
                       ScalePtrs{nullptr, nullptr});
  run(p, w.parts[0].data(), x.data(), out.data());
  if (w.bias.defined()) add_bias(w.bias, T, N, out, om.ld);
}

void CudaGemm::matmul(const void* w, int64_t N, int64_t K, int64_t ld_w, const void* x, int64_t T,
                      int64_t ld_x, void* out, int64_t ld_out, bool out_f32) {
  if (T == 0 || N == 0) return;
  const Plan& p =
      plan(N, T, K, ld_w, ld_x, ld_out, out_f32, w, x, out, ScalePtrs{nullptr, nullptr});
  run(p, w, x, out);
}

void CudaGemm::linear_fp8(const Tensor& x, const Fp8Linear& w, Tensor out) {
  const auto [xm, om] = operands(x, out, w.in_features, w.out_features);
  const int64_t T = xm.rows, K = w.in_features, N = w.out_features;
  INFERD_CHECK(w.weight.defined() && w.weight.device() == Device::kCUDA &&
                   w.weight.dtype() == DType::kF8E4M3 && w.weight.size(0) == N,
               "fp8 linear weight was not placed by the CUDA backend");
  if (T == 0) return;
  const bool out_f32 = out.dtype() == DType::kF32;
  if (T <= cuda::kFp8GemvMaxTokens && cuda::fp8_gemv_variant() != cuda::kFp8GemvCublas &&
      xm.ld % 8 == 0 && alignment_of(x.data()) >= 16) {
    // Decode-sized: one pass over the FP8 weights, the bf16 inputs as they are.
    CU_CHECK(cuda::launch_fp8_gemv(x.data(), xm.ld, int32_t(T), w.weight.data_as<uint8_t>(),
                                   w.weight_scale.data_as<float>(),
                                   w.bias.defined() ? w.bias.data_as<float>() : nullptr, N, K,
                                   out.data(), om.ld, out_f32, ctx_.stream()));
    return;
  }
  // The input rows to FP8, one scale per row (or the static input scale).
  INFERD_CHECK(act_q_.defined() && T <= act_q_.size(0) && K <= act_q_.size(1),
               "fp8 linear of {} x {} beyond the reserved activation buffer", T, K);
  CU_CHECK(cuda::launch_quantize_rows_fp8(x.data(), xm.ld, T, K, act_q_.data_as<uint8_t>(), K,
                                          act_scales_.data_as<float>(), w.act_scale,
                                          ctx_.stream()));
  const ScalePtrs sp{w.weight_scale.data(), act_scales_.data()};
  const Plan& p =
      plan(N, T, K, K, K, om.ld, out_f32, w.weight.data(), act_q_.data(), out.data(), sp);
  set_scale_pointers(p, sp);
  run(p, w.weight.data(), act_q_.data(), out.data());
  if (w.bias.defined()) add_bias(w.bias, T, N, out, om.ld);
}

void CudaGemm::run(const Plan& p, const void* a, const void* b, void* c) {
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasLtMatmul(lt_, p.op, &alpha, a, p.a, b, p.b, &beta, c, p.c, c, p.c, &p.algo,
                              workspace_, workspace_bytes_, ctx_.stream()));
}

void CudaGemm::add_bias(const Tensor& bias, int64_t T, int64_t N, Tensor out, int64_t ld_out) {
  check_vec(bias, N, "linear bias");
  CU_CHECK(cuda::launch_add_bias(out.data(), ld_out, out.dtype() == DType::kF32,
                                 bias.data_as<float>(), int32_t(T), N, ctx_.stream()));
}

void CudaGemm::set_scale_pointers(const Plan& p, const ScalePtrs& sp) {
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sp.a,
                                              sizeof(sp.a)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sp.b,
                                              sizeof(sp.b)));
}

const CudaGemm::Plan& CudaGemm::plan(int64_t N, int64_t T, int64_t K, int64_t lda, int64_t ldb,
                                     int64_t ldc, bool out_f32, const void* a, const void* b,
                                     const void* c, const ScalePtrs& sp) {
  const bool fp8 = sp.a != nullptr;
  const uint32_t al_a = alignment_of(a), al_b = alignment_of(b), al_c = alignment_of(c);
  const PlanKey key{N, T, K, lda, ldb, ldc, out_f32 ? 1 : 0, al_a, al_b, al_c, fp8 ? 1 : 0};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const cudaDataType_t in_type = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, in_type, uint64_t(K), uint64_t(N), lda));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, in_type, uint64_t(K), uint64_t(T), ldb));
  if (fp8) {
    const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode,
                                                sizeof(mode)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode,
                                                sizeof(mode)));
    set_scale_pointers(p, sp);
  }
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, out_f32 ? CUDA_R_32F : CUDA_R_16BF, uint64_t(N),
                                          uint64_t(T), ldc));
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &ws, sizeof(ws)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
  std::array<cublasLtMatmulHeuristicResult_t, kCandidates> res{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_, p.op, p.a, p.b, p.c, p.c, pref,
                                                           kCandidates, res.data(), &found);
  (void)cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    (void)cublasLtMatrixLayoutDestroy(p.a);
    (void)cublasLtMatrixLayoutDestroy(p.b);
    (void)cublasLtMatrixLayoutDestroy(p.c);
    (void)cublasLtMatmulDescDestroy(p.op);
    throw Error(fmt::format(
        "cuBLASLt found no {} GEMM algorithm for out [{}, {}] = x [{}, {}] W^T (lds {} {} {}, "
        "alignment {} {} {}): {}",
        fp8 ? "fp8" : "bf16", T, N, T, K, lda, ldb, ldc, al_a, al_b, al_c,
        cublasLtGetStatusString(st)));
  }
  p.algo = res[0].algo;
  // While tuning (the shapes CUDA graphs replay, step after step, warmed up at start-up): time the
  // candidates once on the real operands and keep the fastest. Other shapes (prefill and mixed
  // steps of every length) keep the heuristic's first choice: timing synchronises.
  if (found > 1 && tuning_ && !ctx_.capturing()) {
    autotune(p, std::span<const cublasLtMatmulHeuristicResult_t>(res.data(), size_t(found)), a, b,
             c);
  }
  return plans_.emplace(key, p).first->second;
}

void CudaGemm::autotune(Plan& p, std::span<const cublasLtMatmulHeuristicResult_t> candidates,
                        const void* a, const void* b, const void* c) {
  float best = INFINITY;
  const float alpha = 1.0f, beta = 0.0f;
  for (const auto& cand : candidates) {
    auto run_once = [&] {
      return cublasLtMatmul(lt_, p.op, &alpha, a, p.a, b, p.b, &beta, const_cast<void*>(c), p.c,
                            const_cast<void*>(c), p.c, &cand.algo, workspace_, workspace_bytes_,
                            ctx_.stream());
    };
    if (run_once() != CUBLAS_STATUS_SUCCESS) continue;
    CU_CHECK(cudaEventRecord(tune_ev_[0], ctx_.stream()));
    bool ok = true;
    for (int rep = 0; rep < kAutotuneReps && ok; ++rep) ok = run_once() == CUBLAS_STATUS_SUCCESS;
    CU_CHECK(cudaEventRecord(tune_ev_[1], ctx_.stream()));
    CU_CHECK(cudaEventSynchronize(tune_ev_[1]));
    float ms = 0;
    CU_CHECK(cudaEventElapsedTime(&ms, tune_ev_[0], tune_ev_[1]));
    if (ok && ms < best) {
      best = ms;
      p.algo = cand.algo;
    }
  }
  ++autotuned_shapes_;
}

}  // namespace inferd::cuda_impl
