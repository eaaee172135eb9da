// The GGUF quantization method (issue 35): each linear weight in the ggml block type its file
// stores it in (parts of one merged linear may differ: Q4_K_M files keep some in Q6_K). Backends
// with kernels for the types (DeviceRuntime::supports_ggml) compute them as they are, reading the
// blocks in place; elsewhere the blocks are dequantized at load into a dense linear (with a
// warning: the memory is then that of the dense weights).
#include <atomic>

#include "core/error.h"
#include "core/logging.h"
#include "model/loader/gguf_model.h"
#include "model/loader/model_loader.h"
#include "model/quant/quantization.h"

namespace inferd {

namespace {

bool is_float(ggml::Type t) {
  return t == ggml::Type::kF32 || t == ggml::Type::kF16 || t == ggml::Type::kBF16;
}

struct GgufLinearWeights final : LinearWeights {
  bool blocks = false;
  Linear dense;
  GgmlLinear ggml;
};

class GgufLinearMethod final : public LinearMethod {
 public:
  std::string name() const override { return "gguf"; }

  std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                ModelLoader& loader) const override {
    auto w = std::make_unique<GgufLinearWeights>();
    DeviceRuntime& rt = loader.runtime();
    const Tensor bias = spec.bias ? loader.bias(spec.parts) : Tensor();
    const GgufWeights* g = loader.gguf();
    INFERD_CHECK(g != nullptr, "the gguf method needs a GGUF model file");
    bool all_float = true, all_supported = true;
    for (const auto& p : spec.parts) {
      const ggml::Type t = g->get(p.name + ".weight").type;
      all_float = all_float && is_float(t);
      all_supported = all_supported && rt.supports_ggml(t);
    }
    if (all_float || !all_supported) {
      if (!all_float) warn_dequantized(rt, spec, *g);
      std::vector<Tensor> parts;
      for (const auto& p : spec.parts)
        parts.push_back(loader.weight(p.name + ".weight", {p.rows, spec.in_features}));
      w->dense = rt.make_linear(std::move(parts), bias);
      return w;
    }
    std::vector<GgmlLinear::Part> parts;
    for (const auto& p : spec.parts) {
      const int64_t shape[2] = {p.rows, spec.in_features};
      const std::string name = p.name + ".weight";
      parts.push_back({g->raw(name, shape), g->get(name).type, p.rows});
    }
    w->blocks = true;
    w->ggml = rt.make_linear_ggml(std::move(parts), bias);
    return w;
  }

  void apply(KernelOps& ops, const LinearWeights& lw, const Tensor& x, Tensor out) const override {
    const auto& w = static_cast<const GgufLinearWeights&>(lw);
    if (w.blocks) {
      ops.linear_ggml(x, w.ggml, out);
    } else {
      ops.linear(x, w.dense, out);
    }
  }

 private:
  static void warn_dequantized(const DeviceRuntime& rt, const LinearSpec& spec,
                               const GgufWeights& g) {
    static std::atomic<bool> warned{false};
    if (warned.exchange(true)) return;
    const ggml::Type t = g.get(spec.parts[0].name + ".weight").type;
    LOG_WARN(
        "backend '{}' has no kernels for GGUF type {} (tensor '{}'): such weights are "
        "dequantized at load and take the memory of dense weights",
        rt.name(), ggml::type_name(uint32_t(t)), g.gguf_name(spec.parts[0].name + ".weight"));
  }
};

class GgufQuantizationConfig final : public QuantizationConfig {
 public:
  std::string name() const override { return "gguf"; }
  const LinearMethod& linear_method(const LinearSpec& spec, ModelLoader& loader) const override {
    (void)spec;
    (void)loader;
    return method_;
  }

 private:
  GgufLinearMethod method_;
};

}  // namespace

std::unique_ptr<QuantizationConfig> make_gguf_quantization_config() {
  return std::make_unique<GgufQuantizationConfig>();
}

}  // namespace inferd
