// FP8 quantization methods: --quantization fp8 (online: bf16/f16/f32 checkpoints rounded to FP8
// per output channel at load, vLLM's flag) and transformers' "fp8" checkpoints (Qwen3-FP8,
// DeepSeek: float8 weights with 128x128 block scales, dequantized to bf16 for now).
#include <mutex>

#include "core/logging.h"
#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"
#include "model/quant/fp8_linear.h"
#include "model/quant/fp8_weights.h"
#include "model/quant/quantization.h"

namespace inferd {

void apply_fp8_linear(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) {
  const auto& f = static_cast<const Fp8LinearWeights&>(w);
  if (f.is_fp8) {
    ops.linear_fp8(x, f.fp8, out);
  } else {
    ops.linear(x, f.dense, out);
  }
}

bool stored_as_fp8(const LinearSpec& spec, const SafetensorsIndex* checkpoint) {
  if (checkpoint == nullptr) return false;
  for (const auto& p : spec.parts) {
    const std::string name = p.name + ".weight";
    if (!checkpoint->contains(name) || checkpoint->info(name).dtype != DType::kF8E4M3) return false;
  }
  return true;
}

Linear dequantized_fp8_linear(const LinearSpec& spec, ModelLoader& loader) {
  std::vector<Tensor> parts;
  for (const auto& p : spec.parts) {
    const int64_t shape[2] = {p.rows, spec.in_features};
    const std::string name = p.name + ".weight";
    // Dequantized whole, then this rank's slice (tensor parallelism): the values of one rank, bit
    // for bit, whatever the scales' blocks (the slice need not fall on them).
    parts.push_back(host_shard(
        dequantize_fp8(read_fp8_weight(loader.checkpoint(), name, shape, loader.config().quant)),
        spec.weight_shard(p), name));
  }
  return loader.runtime().make_linear(std::move(parts),
                                      spec.bias ? loader.bias(spec.parts) : Tensor());
}

void warn_fp8_shape_fallback(int64_t in_features, int64_t out_features) {
  static std::once_flag once;
  std::call_once(once, [&] {
    LOG_WARN("a linear of {} inputs and {} outputs runs in bf16: FP8 GEMMs need multiples of 16",
             in_features, out_features);
  });
}

namespace {

class Fp8OnlineMethod final : public LinearMethod {
 public:
  std::string name() const override { return "fp8 (online, per channel)"; }
  // Scales per output channel over whole rows: a column-parallel rank's rows are whole, and a
  // row-parallel rank (o, down) quantizes the whole weight on the host and keeps its columns, so
  // every rank holds exactly the values of one rank (not vLLM's per-shard scales).
  bool supports_shards() const override { return true; }
  std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                ModelLoader& loader) const override {
    DeviceRuntime& rt = loader.runtime();
    auto w = std::make_unique<Fp8LinearWeights>();
    if (stored_as_fp8(spec, loader.checkpoint_if_any())) {  // float8 without quantization_config
      // read_fp8_weight says so
      w->dense = dequantized_fp8_linear(spec, loader);
      return w;
    }
    std::vector<Tensor> parts;
    for (const auto& p : spec.parts) {
      const int64_t shape[2] = {p.rows, spec.in_features};
      const std::string name = p.name + ".weight";
      const Shard sh = spec.weight_shard(p);
      if (rt.supports_fp8()) {  // quantized on the device after loading, from the rows it holds
        if (!spec.in_shard.whole())
          fail(
              "--tensor-parallel-size {}: '{}' (fp8, online) would need its whole rows' scales on "
              "{}, which row-parallel shards do not compute yet",
              loader.options().tp.size, p.name, rt.name());
        parts.push_back(loader.weight(name, shape, sh));
        continue;
      }
      parts.push_back(read_fp8_rounded(loader, name, shape, sh));
    }
    w->dense = rt.make_linear(std::move(parts), spec.bias ? loader.bias(spec.parts) : Tensor());
    return w;
  }
  void process_weights_after_loading(LinearWeights& lw, DeviceRuntime& rt) const override {
    auto& w = static_cast<Fp8LinearWeights&>(lw);
    if (!rt.supports_fp8() || w.is_fp8) return;
    if (!rt.fp8_gemm_supported(w.dense.out_features, w.dense.in_features)) {
      warn_fp8_shape_fallback(w.dense.in_features, w.dense.out_features);
      return;
    }
    w.fp8 = rt.quantize_linear_fp8(w.dense);
    w.dense = Linear();  // the bf16 copy is freed
    w.is_fp8 = true;
  }
  void apply(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) const override {
    apply_fp8_linear(ops, w, x, out);
  }
};

// transformers' "fp8" checkpoints: float8 weights with block scales, dequantized (a warning on
// backends that compute FP8 otherwise).
class Fp8BlockMethod final : public LinearMethod {
 public:
  explicit Fp8BlockMethod(std::string arch) : arch_(std::move(arch)) {}
  std::string name() const override { return "fp8 (block scales, dequantized)"; }
  bool supports_shards() const override { return true; }  // dequantized, then sliced
  std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                ModelLoader& loader) const override {
    DeviceRuntime& rt = loader.runtime();
    if (rt.supports_fp8()) {
      std::call_once(warned_, [&] {
        LOG_WARN("{}: FP8 weights with 128x128 block scales run dequantized to bf16 on {}", arch_,
                 rt.name());
      });
    }
    auto w = std::make_unique<Fp8LinearWeights>();
    w->dense = dequantized_fp8_linear(spec, loader);
    return w;
  }
  void apply(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) const override {
    apply_fp8_linear(ops, w, x, out);
  }

 private:
  std::string arch_;
  mutable std::once_flag warned_;
};

}  // namespace

const LinearMethod& fp8_online_method() {
  static const Fp8OnlineMethod kMethod;
  return kMethod;
}

std::unique_ptr<LinearMethod> make_fp8_block_method(const ModelConfig& config) {
  return std::make_unique<Fp8BlockMethod>(config.architecture);
}

}  // namespace inferd
