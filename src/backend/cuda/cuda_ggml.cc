// GGUF block weights on the CUDA backend (cuda_ggml.h).
#include "backend/cuda/cuda_ggml.h"

#include <algorithm>

#include "backend/cuda/ggml_blocks.h"
#include "backend/cuda/ggml_gemv.h"
#include "backend/cuda/kernels.h"

namespace inferd::cuda_impl {

namespace {

bool is_float_type(ggml::Type t) {
  return t == ggml::Type::kF32 || t == ggml::Type::kF16 || t == ggml::Type::kBF16;
}

DType float_dtype(ggml::Type t) {
  return t == ggml::Type::kF32 ? DType::kF32 : t == ggml::Type::kF16 ? DType::kF16 : DType::kBF16;
}

}  // namespace

bool CudaGgml::supports(ggml::Type t) {
  return is_float_type(t) || cuda::ggml_kernel_supported(t);
}

GgmlLinear CudaGgml::make_linear(std::vector<GgmlLinear::Part> parts, const Tensor& bias) {
  INFERD_CHECK(!parts.empty(), "GGUF linear without weights");
  GgmlLinear l;
  const ggml::Type t0 = parts[0].type;
  INFERD_CHECK(supports(t0) && parts[0].data.ndim() == 2, "GGUF linear part {} of type {}",
               parts[0].data.shape_str(), ggml::type_name(uint32_t(t0)));
  l.in_features = is_float_type(t0) ? parts[0].data.size(1)
                                    : parts[0].data.size(1) / ggml::traits(t0).block_bytes *
                                          ggml::traits(t0).block_elems;
  for (const GgmlLinear::Part& p : parts) {
    const std::string_view name = ggml::type_name(uint32_t(p.type));
    INFERD_CHECK(supports(p.type), "GGUF type {} has no CUDA kernel", name);
    INFERD_CHECK(p.data.device() == Device::kCPU && p.data.ndim() == 2 && p.data.is_contiguous() &&
                     p.data.size(0) == p.rows,
                 "bad GGUF linear part {} of type {} ({} rows)", p.data.shape_str(), name, p.rows);
    if (is_float_type(p.type)) {
      INFERD_CHECK(p.data.dtype() == float_dtype(p.type) && p.data.size(1) == l.in_features,
                   "GGUF linear part {} {} of type {} for {} inputs", dtype_name(p.data.dtype()),
                   p.data.shape_str(), name, l.in_features);
      l.parts.push_back({weights_.upload(p.data, DType::kBF16), p.type, p.rows});
    } else {
      INFERD_CHECK(p.data.dtype() == DType::kU8 &&
                       l.in_features % ggml::traits(p.type).block_elems == 0 &&
                       p.data.size(1) == ggml::row_bytes(p.type, l.in_features),
                   "GGUF linear part {} of type {}: rows of {} inputs expected", p.data.shape_str(),
                   name, l.in_features);
      l.parts.push_back(place_blocks(p, l.in_features));
      const int64_t chunk_rows = std::max<int64_t>(1, kScratchMaxElems / l.in_features);
      scratch_need_ = std::max(scratch_need_, std::min(p.rows, chunk_rows) * l.in_features);
    }
    l.out_features += p.rows;
  }
  if (bias.defined()) {
    INFERD_CHECK(bias.numel() == l.out_features, "bias of {} for {} outputs", bias.numel(),
                 l.out_features);
    l.bias = weights_.place_vector(bias);
  }
  ctx_.synchronize();  // the host parts may be temporaries
  return l;
}

GgmlLinear::Part CudaGgml::place_blocks(const GgmlLinear::Part& p, int64_t in_features) {
  const ggml::TypeTraits& tr = ggml::traits(p.type);
  const int64_t nb = in_features / tr.block_elems, src_stride = p.data.size(1);
  const int64_t stride = cuda::gg::device_row_stride(p.type, in_features);
  Tensor d = ctx_.alloc(DType::kU8, {p.rows, stride});
  const int64_t chunk = std::max<int64_t>(1, (int64_t(16) << 20) / stride);
  std::vector<uint8_t> buf(size_t(std::min(chunk, p.rows) * stride), 0);
  const uint8_t* src = p.data.data_as<uint8_t>();
  for (int64_t r0 = 0; r0 < p.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, p.rows - r0);
    for (int64_t r = 0; r < n; ++r)  // the bytes after a row's slots stay zero
      cuda::gg::repack_rows(p.type, src + (r0 + r) * src_stride, 1, nb, tr.block_bytes,
                            buf.data() + r * stride);
    CU_CHECK(cudaMemcpyAsync(static_cast<char*>(d.data()) + r0 * stride, buf.data(),
                             size_t(n * stride), cudaMemcpyHostToDevice, ctx_.stream()));
    ctx_.synchronize();  // buf is reused
  }
  return {d, p.type, p.rows};
}

void CudaGgml::reserve() {
  if (scratch_need_ > 0) ensure_scratch();
}

void CudaGgml::ensure_scratch() {
  if (scratch_.defined() && scratch_.numel() >= scratch_need_) return;
  INFERD_CHECK(!ctx_.capturing(),
               "the GGUF dequantization buffer must exist before graph capture (reserve())");
  scratch_ = Tensor();
  scratch_ = ctx_.alloc(DType::kBF16, {scratch_need_});
}

void CudaGgml::linear(const Tensor& x, const GgmlLinear& w, Tensor out) {
  check_dtype(x, DType::kBF16, "linear_ggml x");
  INFERD_CHECK(out.dtype() == DType::kBF16 || out.dtype() == DType::kF32,
               "linear_ggml out: dtype {} (expected bf16 or f32)", dtype_name(out.dtype()));
  const Mat xm = as_matrix(x, "linear_ggml x"), om = as_matrix(out, "linear_ggml out");
  const int64_t T = xm.rows, K = w.in_features;
  INFERD_CHECK(xm.cols == K && om.cols == w.out_features && om.rows == T,
               "linear_ggml shapes x {} W [{}, {}] out {}", x.shape_str(), w.out_features, K,
               out.shape_str());
  if (T == 0) return;
  const bool out_f32 = out.dtype() == DType::kF32;
  const size_t es = out_f32 ? 4 : 2;
  const bool gemv = T <= cuda::kGgmlGemvMaxTokens && xm.ld % 8 == 0 && alignment_of(x.data()) >= 16;
  const float* bias = w.bias.defined() ? w.bias.data_as<float>() : nullptr;
  const cudaStream_t stream = ctx_.stream();
  int64_t base = 0;
  for (const GgmlLinear::Part& p : w.parts) {
    INFERD_CHECK(p.data.device() == Device::kCUDA && p.data.size(0) == p.rows,
                 "GGUF linear part was not placed by the CUDA backend");
    char* o = static_cast<char*>(out.data()) + size_t(base) * es;
    const float* b = bias != nullptr ? bias + base : nullptr;
    const int64_t stride = p.data.size(1);
    const uint8_t* wd = p.data.data_as<uint8_t>();
    if (!is_float_type(p.type) && gemv && cuda::ggml_gemv_preferred(p.type, K, int32_t(T))) {
      // bias fused
      CU_CHECK(cuda::launch_ggml_gemv(p.type, wd, stride, p.rows, K, x.data(), xm.ld, int32_t(T), b,
                                      o, om.ld, out_f32, stream));
      base += p.rows;
      continue;
    }
    if (is_float_type(p.type)) {
      gemm_.matmul(p.data.data(), p.rows, K, K, x.data(), T, xm.ld, o, om.ld, out_f32);
    } else {
      ensure_scratch();
      const int64_t chunk = scratch_.numel() / K;
      for (int64_t r0 = 0; r0 < p.rows; r0 += chunk) {
        const int64_t rc = std::min(chunk, p.rows - r0);
        CU_CHECK(cuda::launch_ggml_dequantize_bf16(p.type, wd + r0 * stride, stride, rc, K,
                                                   scratch_.data(), K, stream));
        gemm_.matmul(scratch_.data(), rc, K, K, x.data(), T, xm.ld, o + size_t(r0) * es, om.ld,
                     out_f32);
      }
    }
    if (b != nullptr)
      CU_CHECK(cuda::launch_add_bias(o, om.ld, out_f32, b, int32_t(T), p.rows, stream));
    base += p.rows;
  }
}

}  // namespace inferd::cuda_impl
