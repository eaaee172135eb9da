// compressed-tensors FP8 checkpoints (RedHatAI/...-FP8, -FP8-dynamic; llm-compressor): float8
// weights with one scale per tensor (repeated per output channel) or per output channel, input
// activations quantized per token at run time or with the checkpoint's static input_scale (one
// for a merged linear: the largest of its parts'). On a backend computing FP8 the weights stay
// FP8; elsewhere (the CPU) they are dequantized, so the backend computes with exactly the values
// an FP8 weight holds.
#include <algorithm>

#include "model/loader/safetensors.h"
#include "model/quant/fp8_linear.h"
#include "model/quant/fp8_weights.h"
#include "model/quant/quantization.h"

namespace inferd {

namespace {

class CompressedTensorsFp8Method final : public LinearMethod {
 public:
  explicit CompressedTensorsFp8Method(bool online_fallback) : online_fallback_(online_fallback) {}
  std::string name() const override { return "compressed-tensors fp8"; }

  std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                ModelLoader& loader) const override {
    if (!stored_as_fp8(spec, loader)) return fallback().create_weights(spec, loader);
    DeviceRuntime& rt = loader.runtime();
    auto w = std::make_unique<Fp8LinearWeights>();
    if (!rt.supports_fp8()) {
      w->dense = dequantized_fp8_linear(spec, loader);
      return w;
    }
    if (!rt.fp8_gemm_supported(spec.out_features(), spec.in_features)) {
      warn_fp8_shape_fallback(spec.in_features, spec.out_features());
      w->dense = dequantized_fp8_linear(spec, loader);
      return w;
    }
    std::vector<Tensor> parts, scales;
    float act_scale = 0.0f;
    for (const auto& p : spec.parts) {
      const int64_t shape[2] = {p.rows, spec.in_features};
      Fp8Weight f =
          read_fp8_weight(loader.checkpoint(), p.name + ".weight", shape, loader.config().quant);
      Tensor sc = Tensor::empty_host(DType::kF32, {f.out()});
      std::copy(f.channel_scale.begin(), f.channel_scale.end(), sc.data_as<float>());
      parts.push_back(f.q);
      scales.push_back(sc);
      if (loader.config().quant.static_activations)
        act_scale = std::max(act_scale, static_input_scale(loader, p.name));
    }
    w->fp8 = rt.make_linear_fp8(std::move(parts), std::move(scales),
                                spec.bias ? loader.bias(spec.parts) : Tensor(), act_scale);
    w->is_fp8 = true;
    return w;
  }
  void process_weights_after_loading(LinearWeights& w, DeviceRuntime& rt) const override {
    fallback().process_weights_after_loading(w, rt);
  }
  void apply(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) const override {
    apply_fp8_linear(ops, w, x, out);
  }

 private:
  const LinearMethod& fallback() const {
    return online_fallback_ ? fp8_online_method() : fp8_dense_method();
  }
  static float static_input_scale(ModelLoader& loader, const std::string& part) {
    const std::string in = part + ".input_scale";
    const SafetensorsIndex& st = loader.checkpoint();
    if (!st.contains(in)) fail("tensor '{}' is missing (static input scale)", in);
    const Tensor t = st.get_float(in);
    if (t.numel() != 1 || t.dtype() != DType::kF32)
      fail("tensor '{}' must hold one fp32 value", in);
    return t.data_as<float>()[0];
  }

  bool online_fallback_;
};

class CompressedTensorsConfig final : public QuantizationConfig {
 public:
  explicit CompressedTensorsConfig(bool online_fallback) : method_(online_fallback) {}
  std::string name() const override { return "compressed-tensors fp8"; }
  const LinearMethod& linear_method(const LinearSpec& spec) const override {
    (void)spec;
    return method_;
  }

 private:
  CompressedTensorsFp8Method method_;
};

}  // namespace

std::unique_ptr<QuantizationConfig> make_compressed_tensors_config(const ModelConfig& config,
                                                                   bool online_fallback) {
  (void)config;
  return std::make_unique<CompressedTensorsConfig>(online_fallback);
}

}  // namespace inferd
