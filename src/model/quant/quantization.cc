// Which quantization scheme a model runs with, and which method each linear gets (quantization.h).
#include "model/quant/quantization.h"

#include "core/error.h"
#include "model/quant/fp8_linear.h"
#include "model/quant/int_weights.h"

namespace inferd {

namespace {

// One method for every linear: unquantized, or --quantization fp8 on a higher-precision checkpoint.
class UniformConfig final : public QuantizationConfig {
 public:
  UniformConfig(std::string name, const LinearMethod& method)
      : name_(std::move(name)), method_(method) {}
  std::string name() const override { return name_; }
  const LinearMethod& linear_method(const LinearSpec& spec, ModelLoader& loader) const override {
    (void)spec;
    (void)loader;
    return method_;
  }

 private:
  std::string name_;
  const LinearMethod& method_;
};

// An FP8 checkpoint: its method for the linears it stores in float8; the rest (usually lm_head,
// or every linear under --load-format dummy) as stored, or under --quantization fp8 rounded at
// load.
class Fp8CheckpointConfig final : public QuantizationConfig {
 public:
  Fp8CheckpointConfig(std::string name, std::unique_ptr<LinearMethod> method, bool online)
      : name_(std::move(name)),
        method_(std::move(method)),
        others_(online ? fp8_online_method() : unquantized_linear_method()) {}
  std::string name() const override { return name_; }
  const LinearMethod& linear_method(const LinearSpec& spec, ModelLoader& loader) const override {
    return stored_as_fp8(spec, loader.checkpoint_if_any()) ? *method_ : others_;
  }

 private:
  std::string name_;
  std::unique_ptr<LinearMethod> method_;
  const LinearMethod& others_;
};

}  // namespace

namespace {

// --quantization as vLLM spells it: awq / gptq (and their *_marlin kernel names) and
// compressed-tensors name the checkpoint's method and must match it.
const char* checkpoint_method_flag(const std::string& q) {
  if (q == "awq" || q == "awq_marlin") return "awq";
  if (q == "gptq" || q == "gptq_marlin") return "gptq";
  if (q == "compressed-tensors") return "compressed-tensors";
  if (q == "mxfp4") return "mxfp4";
  return nullptr;
}

const char* checkpoint_method_of(QuantMethod m) {
  switch (m) {
    case QuantMethod::kAwq:
      return "awq";
    case QuantMethod::kGptq:
      return "gptq";
    case QuantMethod::kCompressedTensorsFp8:
    case QuantMethod::kCompressedTensorsInt:
      return "compressed-tensors";
    case QuantMethod::kFp8Block:
      return "fp8";
    case QuantMethod::kGguf:
      return "gguf";
    case QuantMethod::kMxfp4:
      return "mxfp4";
    case QuantMethod::kNone:
      break;
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<QuantizationConfig> make_quantization_config(const ModelConfig& config,
                                                             const LoadOptions& opts) {
  const bool gguf = config.quant.method == QuantMethod::kGguf;
  const char* named = checkpoint_method_flag(opts.quantization);
  if (!opts.quantization.empty() && opts.quantization != "fp8" && opts.quantization != "gguf" &&
      named == nullptr)
    fail("unsupported --quantization '{}': expected fp8, gguf, awq, gptq, compressed-tensors or mxfp4",
         opts.quantization);
  if (named != nullptr) {
    const char* stored = checkpoint_method_of(config.quant.method);
    if (stored == nullptr)
      fail(
          "--quantization {}: the checkpoint's config.json has no quantization_config (expected "
          "quant_method '{}')",
          opts.quantization, named);
    if (std::string(stored) != named)
      fail(
          "--quantization {} does not match the checkpoint's quantization_config.quant_method "
          "'{}'",
          opts.quantization, stored);
  }
  if (opts.quantization == "gguf" && !gguf)
    fail("--quantization gguf needs a GGUF model file; this model is not one");
  if (opts.quantization == "fp8" && gguf)
    fail("--quantization fp8 does not apply to a GGUF file (its tensors keep their GGUF types)");
  const bool int_method = config.quant.method == QuantMethod::kAwq ||
                          config.quant.method == QuantMethod::kGptq ||
                          config.quant.method == QuantMethod::kCompressedTensorsInt;
  if (opts.quantization == "fp8" && int_method)
    fail("--quantization fp8 does not apply to a {} checkpoint (its weights stay integers)",
         quant_method_name(config.quant.method));
  const bool online = opts.quantization == "fp8";
  switch (config.quant.method) {
    case QuantMethod::kGguf:
      // --load-format dummy draws dense weights from the GGUF file's config alone.
      if (opts.format == LoadFormat::kDummy) break;
      return make_gguf_quantization_config();
    case QuantMethod::kCompressedTensorsFp8:
      return std::make_unique<Fp8CheckpointConfig>("compressed-tensors fp8",
                                                   make_compressed_tensors_method(), online);
    case QuantMethod::kFp8Block:
      return std::make_unique<Fp8CheckpointConfig>("fp8 (block scales)",
                                                   make_fp8_block_method(config), online);
    case QuantMethod::kAwq:
      return make_int_quantization_config("awq", make_awq_method());
    case QuantMethod::kGptq:
      return make_int_quantization_config("gptq", make_gptq_method());
    case QuantMethod::kCompressedTensorsInt:
      return make_int_quantization_config("compressed-tensors (pack-quantized)",
                                          make_compressed_tensors_int_method());
    case QuantMethod::kMxfp4:  // the experts' own method (mxfp4.cc); linears as stored
    case QuantMethod::kNone:
      break;
  }
  return online ? std::make_unique<UniformConfig>("fp8", fp8_online_method())
                : std::make_unique<UniformConfig>("none", unquantized_linear_method());
}

}  // namespace inferd
