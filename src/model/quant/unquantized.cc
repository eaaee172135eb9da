// The unquantized linear method: weights as the checkpoint stores them (bf16/f16/f32; the CPU
// reads them in place from the mapping, the GPU keeps one bf16 copy with the parts concatenated),
// applied by the backend's dense GEMM.
#include "model/loader/model_loader.h"
#include "model/quant/fp8_linear.h"
#include "model/quant/quantization.h"

namespace inferd {

namespace {

struct DenseWeights final : LinearWeights {
  Linear w;
};

class UnquantizedLinearMethod final : public LinearMethod {
 public:
  std::string name() const override { return "unquantized"; }
  bool supports_shards() const override { return true; }
  std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                ModelLoader& loader) const override {
    auto w = std::make_unique<DenseWeights>();
    // Float8 tensors in a checkpoint without quantization_config: read_fp8_weight says so.
    if (stored_as_fp8(spec, loader.checkpoint_if_any())) {
      w->w = dequantized_fp8_linear(spec, loader);
      return w;
    }
    // Each part's slice for this rank (all of it without tensor parallelism).
    std::vector<Tensor> parts;
    for (const auto& p : spec.parts) {
      const int64_t shape[2] = {p.rows, spec.in_features};
      parts.push_back(loader.weight(p.name + ".weight", shape, spec.weight_shard(p)));
    }
    w->w = loader.runtime().make_linear(std::move(parts),
                                        spec.bias ? loader.bias(spec.parts) : Tensor());
    return w;
  }
  void apply(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) const override {
    ops.linear(x, static_cast<const DenseWeights&>(w).w, out);
  }
};

}  // namespace

const LinearMethod& unquantized_linear_method() {
  static const UnquantizedLinearMethod kMethod;
  return kMethod;
}

}  // namespace inferd
