// compressed-tensors FP8 checkpoints (RedHatAI/...-FP8, -FP8-dynamic; llm-compressor): float8
// weights with one scale per tensor (repeated per output channel) or per output channel, input
// activations quantized per token at run time or with the checkpoint's static input_scale (one
// for a merged linear: the largest of its parts'). On a backend computing FP8 the weights stay
// FP8; elsewhere (the CPU) they are dequantized, so the backend computes with exactly the values
// an FP8 weight holds.
#include <algorithm>

#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"
#include "model/quant/fp8_linear.h"
#include "model/quant/fp8_weights.h"
#include "model/quant/quantization.h"

namespace inferd {

namespace {

class CompressedTensorsFp8Method final : public LinearMethod {
 public:
  std::string name() const override { return "compressed-tensors fp8"; }
  // A rank's slice of the float8 weight with its rows' scales (per tensor or per output channel:
  // the same values as one rank's), or dequantized and sliced.
  bool supports_shards() const override { return true; }

  std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                ModelLoader& loader) const override {
    DeviceRuntime& rt = loader.runtime();
    auto w = std::make_unique<Fp8LinearWeights>();
    if (!rt.supports_fp8()) {
      w->dense = dequantized_fp8_linear(spec, loader);
      return w;
    }
    if (!rt.fp8_gemm_supported(spec.out_features(), spec.local_in_features())) {
      warn_fp8_shape_fallback(spec.local_in_features(), spec.out_features());
      w->dense = dequantized_fp8_linear(spec, loader);
      return w;
    }
    std::vector<Tensor> parts, scales;
    float act_scale = 0.0f;
    for (const auto& p : spec.parts) {
      const int64_t shape[2] = {p.rows, spec.in_features};
      const std::string name = p.name + ".weight";
      const Fp8Weight f = read_fp8_weight(loader.checkpoint(), name, shape, loader.config().quant);
      // This rank's rows (with their scales) or inputs (every row's scale) of the weight.
      const Shard sh = spec.weight_shard(p);
      const int64_t r0 = sh.whole() || sh.dim != 0 ? 0 : sh.rank * (f.out() / sh.size);
      const Tensor q = host_shard(f.q, sh, name);
      Tensor sc = Tensor::empty_host(DType::kF32, {q.size(0)});
      std::copy(f.channel_scale.begin() + r0, f.channel_scale.begin() + r0 + q.size(0),
                sc.data_as<float>());
      parts.push_back(q);
      scales.push_back(sc);
      if (loader.config().quant.static_activations)
        act_scale = std::max(act_scale, static_input_scale(loader, p.name));
    }
    w->fp8 = rt.make_linear_fp8(std::move(parts), std::move(scales),
                                spec.bias ? loader.bias(spec.parts) : Tensor(), act_scale);
    w->is_fp8 = true;
    return w;
  }
  void apply(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) const override {
    apply_fp8_linear(ops, w, x, out);
  }

 private:
  static float static_input_scale(ModelLoader& loader, const std::string& part) {
    const std::string in = part + ".input_scale";
    const SafetensorsIndex& st = loader.checkpoint();
    if (!st.contains(in)) fail("tensor '{}' is missing (static input scale)", in);
    const Tensor t = st.get_float(in);
    if (t.numel() != 1 || t.dtype() != DType::kF32)
      fail("tensor '{}' must hold one fp32 value", in);
    return t.data_as<float>()[0];
  }
};

}  // namespace

std::unique_ptr<LinearMethod> make_compressed_tensors_method() {
  return std::make_unique<CompressedTensorsFp8Method>();
}

}  // namespace inferd
