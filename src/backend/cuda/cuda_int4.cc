// Int4 weights on the CUDA backend (cuda_int4.h).
#include "backend/cuda/cuda_int4.h"

#include <algorithm>
#include <vector>

#include "backend/cuda/int4_gemm.h"
#include "backend/cuda/kernels.h"

namespace inferd::cuda_impl {

bool CudaInt4::supports(int64_t out_features, int64_t in_features, int64_t group_size) {
  return cuda::int4_shape_supported(out_features, in_features, group_size);
}

void CudaInt4::note_shape(int64_t n, int64_t k, bool perm) {
  if (perm) max_perm_k_ = std::max(max_perm_k_, k);
  const int64_t chunk = std::max<int64_t>(16, kScratchMaxElems / k / 16 * 16);
  scratch_need_ = std::max(scratch_need_, std::min(n, chunk) * k);
}

Int4Linear CudaInt4::make_linear(const Int4Linear& h) {
  const int64_t N = h.out_features, K = h.in_features, G = K / std::max<int64_t>(1, h.group_size);
  INFERD_CHECK(supports(N, K, h.group_size), "int4 linear [{}, {}] group {}: no CUDA kernel", N, K,
               h.group_size);
  INFERD_CHECK(h.qweight.device() == Device::kCPU && h.qweight.dtype() == DType::kI32 &&
                   h.qweight.numel() == N * K / 8 && h.scales.numel() == G * N &&
                   h.zeros.numel() == G * N && (!h.perm.defined() || h.perm.numel() == K),
               "int4 linear [{}, {}]: host tensors of the canonical form expected", N, K);
  Int4Linear l;
  l.in_features = K;
  l.out_features = N;
  l.group_size = h.group_size;
  // Codes into the tile layout (int4_layout.h).
  std::vector<uint32_t> tiles(size_t(N * K / 8), 0u);
  cuda::int4_repack_tiles(h.qweight.data_as<const uint32_t>(), N, K, tiles.data());
  std::vector<uint16_t> sz(size_t(2 * G * N));
  for (int64_t i = 0; i < G * N; ++i) {
    sz[size_t(2 * i)] = f32_to_f16(h.scales.data_as<float>()[i]);
    sz[size_t(2 * i + 1)] = f32_to_f16(h.zeros.data_as<float>()[i]);
  }
  l.qweight = ctx_.alloc(DType::kI32, {N * K / 8});
  l.scales = ctx_.alloc(DType::kF16, {G, 2 * N});
  CU_CHECK(cudaMemcpyAsync(l.qweight.data(), tiles.data(), tiles.size() * 4, cudaMemcpyHostToDevice,
                           ctx_.stream()));
  CU_CHECK(cudaMemcpyAsync(l.scales.data(), sz.data(), sz.size() * 2, cudaMemcpyHostToDevice,
                           ctx_.stream()));
  if (h.perm.defined()) {
    l.perm = ctx_.alloc(DType::kI32, {K});
    CU_CHECK(cudaMemcpyAsync(l.perm.data(), h.perm.data(), size_t(K) * 4, cudaMemcpyHostToDevice,
                             ctx_.stream()));
  }
  if (h.bias.defined()) {
    INFERD_CHECK(h.bias.numel() == N, "bias of {} for {} outputs", h.bias.numel(), N);
    l.bias = weights_.place_vector(h.bias);
  }
  ctx_.synchronize();  // the host buffers are temporaries
  note_shape(N, K, l.perm.defined());
  return l;
}

Int4Linear CudaInt4::random_linear(int64_t n, int64_t k, int64_t group_size, uint64_t seed,
                                   float stddev, const Tensor& bias) {
  INFERD_CHECK(supports(n, k, group_size), "int4 linear [{}, {}] group {}: no CUDA kernel", n, k,
               group_size);
  Int4Linear l;
  l.in_features = k;
  l.out_features = n;
  l.group_size = group_size;
  l.qweight = ctx_.alloc(DType::kI32, {n * k / 8});
  l.scales = ctx_.alloc(DType::kF16, {k / group_size, 2 * n});
  // Uniform codes 0..15 minus 8 have a standard deviation of about 4.6.
  CU_CHECK(cuda::launch_int4_fill_random(l.qweight.data_as<uint32_t>(), l.scales.data(), n, k,
                                         group_size, seed, stddev / 4.6f, ctx_.stream()));
  if (bias.defined()) l.bias = weights_.place_vector(bias);
  note_shape(n, k, false);
  return l;
}

void CudaInt4::reserve(int32_t max_tokens) {
  ensure_buffers(max_tokens);
}

void CudaInt4::ensure_buffers(int64_t tokens) {
  // The gather buffer holds rows x max_perm_k_: a weight with a permutation and a wider input
  // placed after reserve() needs a larger one even for as many rows.
  const int64_t rows = std::max(gather_tokens_, tokens);
  const bool need_gather =
      max_perm_k_ > 0 && (!gather_.defined() || gather_.numel() < rows * max_perm_k_);
  const bool need_scratch =
      scratch_need_ > 0 && (!scratch_.defined() || scratch_.numel() < scratch_need_);
  if (!need_gather && !need_scratch) return;
  INFERD_CHECK(!ctx_.capturing(), "the int4 buffers must exist before graph capture (reserve())");
  if (need_gather) {
    gather_ = Tensor();
    gather_ = ctx_.alloc(DType::kBF16, {rows * max_perm_k_});
    gather_tokens_ = rows;
  }
  if (need_scratch) {
    scratch_ = Tensor();
    scratch_ = ctx_.alloc(DType::kBF16, {scratch_need_});
  }
}

void CudaInt4::linear(const Tensor& x, const Int4Linear& w, Tensor out) {
  check_dtype(x, DType::kBF16, "linear_int4 x");
  INFERD_CHECK(out.dtype() == DType::kBF16 || out.dtype() == DType::kF32,
               "linear_int4 out: dtype {} (expected bf16 or f32)", dtype_name(out.dtype()));
  const Mat xm = as_matrix(x, "linear_int4 x"), om = as_matrix(out, "linear_int4 out");
  const int64_t T = xm.rows, K = w.in_features, N = w.out_features;
  INFERD_CHECK(xm.cols == K && om.cols == N && om.rows == T,
               "linear_int4 shapes x {} W [{}, {}] out {}", x.shape_str(), N, K, out.shape_str());
  INFERD_CHECK(w.qweight.device() == Device::kCUDA,
               "int4 linear was not placed by the CUDA backend");
  if (T == 0) return;
  const bool out_f32 = out.dtype() == DType::kF32;
  const cudaStream_t stream = ctx_.stream();
  const float* bias = w.bias.defined() ? w.bias.data_as<float>() : nullptr;
  const void* xin = x.data();
  int64_t ld = xm.ld;
  if (w.perm.defined() || xm.ld % 2 != 0 || alignment_of(x.data()) < 4) {
    INFERD_CHECK(w.perm.defined(), "linear_int4 x: rows must be 4-byte aligned");
    ensure_buffers(T);
    CU_CHECK(cuda::launch_int4_gather_columns(x.data(), xm.ld, int32_t(T), K,
                                              w.perm.data_as<int32_t>(), gather_.data(), stream));
    xin = gather_.data();
    ld = K;
  }
  const auto* qw = w.qweight.data_as<uint32_t>();
  if (T < cuda::kInt4DequantMinTokens) {
    CU_CHECK(cuda::launch_int4_gemm(qw, w.scales.data(), N, K, w.group_size, xin, ld, int32_t(T),
                                    bias, out.data(), om.ld, out_f32, stream));
    return;
  }
  ensure_buffers(0);
  const size_t es = out_f32 ? 4 : 2;
  const int64_t chunk = std::max<int64_t>(16, scratch_.numel() / K / 16 * 16);
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t rc = std::min(chunk, N - r0);
    CU_CHECK(cuda::launch_int4_dequantize_bf16(qw, w.scales.data(), N, K, w.group_size, r0, rc,
                                               scratch_.data(), stream));
    gemm_.matmul(scratch_.data(), rc, K, K, xin, T, ld,
                 static_cast<char*>(out.data()) + size_t(r0) * es, om.ld, out_f32);
  }
  if (bias != nullptr)
    CU_CHECK(cuda::launch_add_bias(out.data(), om.ld, out_f32, bias, int32_t(T), N, stream));
}

}  // namespace inferd::cuda_impl
