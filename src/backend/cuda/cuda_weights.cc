// Weight placement for the CUDA backend (cuda_weights.h).
#include "backend/cuda/cuda_weights.h"

#include <algorithm>

#include "backend/cuda/fp8.h"
#include "backend/cuda/kernels.h"

namespace inferd::cuda_impl {

CudaWeights::CudaWeights(CudaContext& ctx, size_t staging_bytes) : ctx_(ctx) {
  staging_half_ = std::max<size_t>(staging_bytes / 2, 1 << 20) / 256 * 256;
  for (int i = 0; i < 2; ++i) {
    CU_CHECK(cudaHostAlloc(&staging_[i], staging_half_, cudaHostAllocDefault));
    CU_CHECK(cudaEventCreateWithFlags(&staging_ev_[i], cudaEventDisableTiming));
  }
}

CudaWeights::~CudaWeights() {
  for (int i = 0; i < 2; ++i) {
    (void)cudaFreeHost(staging_[i]);
    (void)cudaEventDestroy(staging_ev_[i]);
  }
}

Tensor CudaWeights::make_param(const Tensor& host) {
  if (host.device() == Device::kCUDA) return host;
  INFERD_CHECK(is_float(host.dtype()) && host.is_contiguous(), "bad parameter {} {}",
               dtype_name(host.dtype()), host.shape_str());
  if (host.ndim() == 1) return place_vector(host);
  Tensor d = ctx_.alloc(DType::kBF16, host.shape());
  upload_into(host, d.data(), DType::kBF16);
  if (host.ndim() == 2 && host.holder()) {
    embed_src_ = host.data();
    embed_src_dtype_ = host.dtype();
    embed_holder_ = host.holder();
    embed_dev_ = d;
  }
  return d;
}

Linear CudaWeights::make_linear(std::vector<Tensor> parts, const Tensor& bias) {
  INFERD_CHECK(!parts.empty(), "linear without weights");
  Linear l;
  l.in_features = parts[0].size(1);
  for (const Tensor& p : parts) {
    INFERD_CHECK(
        p.ndim() == 2 && p.size(1) == l.in_features && p.is_contiguous() && is_float(p.dtype()),
        "bad linear part {} {}", dtype_name(p.dtype()), p.shape_str());
    l.out_features += p.size(0);
  }
  if (parts.size() == 1) {
    const Tensor& p = parts[0];
    if (p.device() == Device::kCUDA && p.dtype() == DType::kBF16) {
      l.parts = {p};  // already placed (tied embeddings under --load-format dummy)
    } else if (embed_dev_.defined() && p.data() == embed_src_ && p.dtype() == embed_src_dtype_ &&
               p.numel() == embed_dev_.numel() && !embed_holder_.expired()) {
      l.parts = {embed_dev_};  // tied embeddings: the table uploaded by make_param
    }
  }
  if (l.parts.empty()) {
    Tensor w = ctx_.alloc(DType::kBF16, {l.out_features, l.in_features});
    int64_t row = 0;
    for (const Tensor& p : parts) {
      char* dst = static_cast<char*>(w.data()) + row * l.in_features * 2;
      if (p.device() == Device::kCUDA) {
        check_dtype(p, DType::kBF16, "device linear part");
        CU_CHECK(
            cudaMemcpyAsync(dst, p.data(), p.nbytes(), cudaMemcpyDeviceToDevice, ctx_.stream()));
      } else {
        upload_into(p, dst, DType::kBF16);
      }
      row += p.size(0);
    }
    l.parts = {w};
  }
  if (bias.defined()) {
    INFERD_CHECK(bias.numel() == l.out_features, "bias of {} for {} outputs", bias.numel(),
                 l.out_features);
    l.bias = place_vector(bias);
  }
  return l;
}

Fp8Linear CudaWeights::make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales,
                                       const Tensor& bias, float act_scale) {
  INFERD_CHECK(!parts.empty() && parts.size() == scales.size(), "fp8 linear: {} parts, {} scales",
               parts.size(), scales.size());
  Fp8Linear l;
  l.in_features = parts[0].size(1);
  std::vector<float> scale_host;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    INFERD_CHECK(p.ndim() == 2 && p.size(1) == l.in_features && p.is_contiguous() &&
                     p.dtype() == DType::kF8E4M3 && p.device() == Device::kCPU,
                 "bad fp8 linear part {} {}", dtype_name(p.dtype()), p.shape_str());
    INFERD_CHECK(scales[i].numel() == p.size(0) && scales[i].dtype() == DType::kF32,
                 "fp8 linear part of {} rows with {} scales", p.size(0), scales[i].numel());
    l.out_features += p.size(0);
    scale_host.insert(scale_host.end(), scales[i].data_as<float>(),
                      scales[i].data_as<float>() + scales[i].numel());
  }
  l.weight = ctx_.alloc(DType::kF8E4M3, {l.out_features, l.in_features});
  int64_t off = 0;
  for (const Tensor& p : parts) {
    CU_CHECK(cudaMemcpyAsync(static_cast<char*>(l.weight.data()) + off, p.data(), p.nbytes(),
                             cudaMemcpyHostToDevice, ctx_.stream()));
    off += int64_t(p.nbytes());
  }
  ctx_.synchronize();  // the host parts may be temporaries
  l.weight_scale = place_vector(Tensor(scale_host.data(), DType::kF32, {l.out_features}));
  ctx_.synchronize();
  l.act_scale = act_scale;
  if (bias.defined()) l.bias = place_vector(bias);
  return l;
}

Fp8Linear CudaWeights::quantize_linear_fp8(const Linear& src) {
  INFERD_CHECK(src.parts.size() == 1 && src.parts[0].dtype() == DType::kBF16 &&
                   src.parts[0].device() == Device::kCUDA,
               "quantize_linear_fp8: a bf16 linear made by this backend expected");
  const int64_t N = src.out_features, K = src.in_features;
  Fp8Linear l;
  l.in_features = K;
  l.out_features = N;
  l.bias = src.bias;
  l.weight = ctx_.alloc(DType::kF8E4M3, {N, K});
  l.weight_scale = ctx_.alloc(DType::kF32, {N});
  CU_CHECK(cuda::launch_quantize_rows_fp8(src.parts[0].data(), K, N, K, l.weight.data_as<uint8_t>(),
                                          K, l.weight_scale.data_as<float>(), 0.0f, ctx_.stream()));
  ctx_.synchronize();  // the bf16 weight is freed by the caller
  return l;
}

Tensor CudaWeights::random_tensor(DType dtype, std::span<const int64_t> shape, uint64_t seed,
                                  float stddev, float fill) {
  Tensor t = ctx_.alloc(dtype, shape);
  fill_random(t, seed, stddev, fill);
  return t;
}

void CudaWeights::fill_random(const Tensor& t, uint64_t seed, float stddev, float fill) {
  INFERD_CHECK(t.device() == Device::kCUDA && t.is_contiguous(),
               "cuda_fill_random: contiguous CUDA tensor expected");
  CU_CHECK(cuda::launch_fill_random(t.data(), dtype_code(t.dtype()), t.numel(), seed, stddev, fill,
                                    ctx_.stream()));
}

Tensor CudaWeights::upload(const Tensor& host, DType dtype) {
  INFERD_CHECK(host.device() == Device::kCPU && is_float(host.dtype()) && is_float(dtype),
               "cuda_upload: {} tensor to {}", dtype_name(host.dtype()), dtype_name(dtype));
  Tensor d = ctx_.alloc(dtype, host.shape());
  upload_into(host, d.data(), dtype);
  return d;
}

void CudaWeights::poison(const Tensor& t) {
  const Mat m = as_matrix(t, "cuda_poison");
  const size_t es = dtype_size(t.dtype());
  if (m.rows == 1 || m.ld == m.cols) {
    CU_CHECK(cudaMemsetAsync(t.data(), 0xFF, size_t(m.rows) * size_t(m.cols) * es, ctx_.stream()));
  } else {
    CU_CHECK(cudaMemset2DAsync(t.data(), size_t(m.ld) * es, 0xFF, size_t(m.cols) * es,
                               size_t(m.rows), ctx_.stream()));
  }
}

Tensor CudaWeights::place_vector(const Tensor& v) {
  if (v.device() == Device::kCUDA) {
    check_dtype(v, DType::kF32, "device vector parameter");
    return v;
  }
  Tensor d = ctx_.alloc(DType::kF32, {v.numel()});
  upload_into(v, d.data(), DType::kF32);
  return d;
}

void CudaWeights::upload_into(const Tensor& host, void* dst, DType dst_dtype) {
  INFERD_CHECK(host.device() == Device::kCPU && host.is_contiguous() && is_float(host.dtype()),
               "upload of a {} {} tensor", dtype_name(host.dtype()), host.shape_str());
  const int64_t n = host.numel();
  const size_t des = dtype_size(dst_dtype), ses = dtype_size(host.dtype());
  const int64_t chunk = int64_t(staging_half_ / des);
  int half = 0;
  for (int64_t i0 = 0; i0 < n; i0 += chunk, half ^= 1) {
    const int64_t m = std::min(chunk, n - i0);
    CU_CHECK(cudaEventSynchronize(staging_ev_[half]));
    convert(static_cast<const char*>(host.data()) + size_t(i0) * ses, host.dtype(), staging_[half],
            dst_dtype, m);
    CU_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + size_t(i0) * des, staging_[half],
                             size_t(m) * des, cudaMemcpyHostToDevice, ctx_.stream()));
    CU_CHECK(cudaEventRecord(staging_ev_[half], ctx_.stream()));
  }
}

}  // namespace inferd::cuda_impl
