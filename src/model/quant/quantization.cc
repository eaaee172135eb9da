// Which quantization scheme a model runs with (quantization.h).
#include "model/quant/quantization.h"

#include "core/error.h"

namespace inferd {

std::unique_ptr<QuantizationConfig> make_quantization_config(const ModelConfig& config,
                                                             const LoadOptions& opts,
                                                             const DeviceRuntime& runtime) {
  if (!opts.quantization.empty() && opts.quantization != "fp8")
    fail("unsupported --quantization '{}': expected fp8", opts.quantization);
  const bool online = opts.quantization == "fp8";
  switch (config.quant.method) {
    case QuantMethod::kCompressedTensorsFp8:
      return make_compressed_tensors_config(config, online);
    case QuantMethod::kFp8Block:
      return make_fp8_block_config(config, online);
    case QuantMethod::kNone:
      break;
  }
  return online ? make_fp8_online_config(runtime) : make_unquantized_config();
}

}  // namespace inferd
