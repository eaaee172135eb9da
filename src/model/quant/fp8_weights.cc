#include "model/quant/fp8_weights.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/loader/model_loader.h"

namespace inferd {

std::vector<float> float_values(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DType::kF32:
        v[size_t(i)] = t.data_as<float>()[i];
        break;
      case DType::kBF16:
        v[size_t(i)] = bf16_to_f32(t.data_as<uint16_t>()[i]);
        break;
      case DType::kF16:
        v[size_t(i)] = f16_to_f32(t.data_as<uint16_t>()[i]);
        break;
      default:
        fail("scale tensor of dtype {} (expected a float type)", dtype_name(t.dtype()));
    }
  }
  return v;
}

namespace {

float float_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kF32:
      return t.data_as<float>()[i];
    case DType::kBF16:
      return bf16_to_f32(t.data_as<uint16_t>()[i]);
    case DType::kF16:
      return f16_to_f32(t.data_as<uint16_t>()[i]);
    default:
      break;
  }
  fail("weight of dtype {} cannot be quantized to fp8", dtype_name(t.dtype()));
}

}  // namespace

Fp8Weight read_fp8_weight(const SafetensorsIndex& st, const std::string& name,
                          std::span<const int64_t> shape, const QuantConfig& quant) {
  INFERD_CHECK(shape.size() == 2, "fp8 weight '{}' must be 2-d", name);
  Fp8Weight w;
  w.q = st.get(name, shape);
  if (w.q.dtype() != DType::kF8E4M3)
    fail("tensor '{}' has dtype {}, expected F8_E4M3", name, dtype_name(w.q.dtype()));
  const std::string base = name.substr(0, name.size() - std::string("weight").size());
  const int64_t out = shape[0], in = shape[1];
  switch (quant.method) {
    case QuantMethod::kCompressedTensorsFp8: {
      const std::string sname = base + "weight_scale";
      if (!st.contains(sname))
        fail("tensor '{}' is missing (the scale of the fp8 weight '{}')", sname, name);
      const Tensor s = st.get(sname);
      const std::vector<float> v = float_values(s);
      if (quant.weight_per_tensor || v.size() == 1) {
        if (v.size() != 1)
          fail("tensor '{}' has {} values, expected one (strategy \"tensor\")", sname, v.size());
        w.channel_scale.assign(size_t(out), v[0]);
      } else {
        if (int64_t(v.size()) != out)
          fail("tensor '{}' has {} values, expected one per output channel ({})", sname, v.size(),
               out);
        w.channel_scale = v;
      }
      break;
    }
    case QuantMethod::kFp8Block: {
      const std::string sname = base + "weight_scale_inv";
      if (!st.contains(sname))
        fail("tensor '{}' is missing (the block scales of the fp8 weight '{}')", sname, name);
      w.block_n = quant.block_n;
      w.block_k = quant.block_k;
      const int64_t sh[2] = {(out + w.block_n - 1) / w.block_n, (in + w.block_k - 1) / w.block_k};
      w.block_scale = float_values(st.get(sname, sh));
      break;
    }
    case QuantMethod::kNone:
      fail("tensor '{}' is float8 but config.json has no quantization_config", name);
    case QuantMethod::kGguf:
      fail("tensor '{}': GGUF files have no float8 tensors", name);
    case QuantMethod::kMxfp4:
      fail("tensor '{}' is float8 but the checkpoint's quantization_config says mxfp4", name);
    case QuantMethod::kAwq:
    case QuantMethod::kGptq:
    case QuantMethod::kCompressedTensorsInt:
      fail("tensor '{}' is float8 in a {} checkpoint (integer weights expected)", name,
           quant_method_name(quant.method));
  }
  for (float f : w.channel_scale)
    if (!(f > 0) || !std::isfinite(f)) fail("the scales of '{}' must be positive and finite", name);
  for (float f : w.block_scale)
    if (!(f > 0) || !std::isfinite(f)) fail("the scales of '{}' must be positive and finite", name);
  return w;
}

Fp8Weight quantize_fp8_per_channel(const Tensor& src) {
  INFERD_CHECK(src.ndim() == 2, "quantize_fp8_per_channel: 2-d weight expected, got {}",
               src.shape_str());
  const int64_t out = src.size(0), in = src.size(1);
  Fp8Weight w;
  w.q = Tensor::empty_host(DType::kF8E4M3, {out, in});
  w.channel_scale.resize(size_t(out));
  uint8_t* q = w.q.data_as<uint8_t>();
  for (int64_t n = 0; n < out; ++n) {
    float amax = 0;
    for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(float_at(src, n * in + k)));
    const float scale = amax > 0 ? amax / 448.0f : 1.0f;
    w.channel_scale[size_t(n)] = scale;
    for (int64_t k = 0; k < in; ++k)
      q[n * in + k] = f32_to_f8e4m3(float_at(src, n * in + k) / scale);
  }
  return w;
}

Tensor dequantize_fp8(const Fp8Weight& w) {
  const int64_t out = w.out(), in = w.in();
  Tensor t = Tensor::empty_host(DType::kF32, {out, in});
  const uint8_t* q = w.q.data_as<uint8_t>();
  float* d = t.data_as<float>();
  for (int64_t n = 0; n < out; ++n)
    for (int64_t k = 0; k < in; ++k) d[n * in + k] = f8e4m3_to_f32(q[n * in + k]) * w.scale(n, k);
  return t;
}

Tensor read_fp8_rounded(ModelLoader& loader, const std::string& name,
                        std::span<const int64_t> shape, const Shard& shard) {
  const Tensor t = loader.weight(name, shape, shard.dim == 0 ? shard : Shard{});
  if (t.device() != Device::kCPU || t.data() == nullptr)
    fail("--quantization fp8 with --load-format dummy is not supported on {}",
         loader.runtime().name());
  const Tensor r = dequantize_fp8(quantize_fp8_per_channel(t));
  return shard.dim == 0 ? r : host_shard(r, shard, name);
}

}  // namespace inferd
