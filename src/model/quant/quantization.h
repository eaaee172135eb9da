// A model's QuantizationConfig from its checkpoint's quantization_config and --quantization: the
// one place that says which method each quantization scheme is (quant_method.h).
#pragma once

#include <memory>

#include "backend/device_runtime.h"
#include "model/config.h"
#include "model/loader/model_loader.h"
#include "model/quant/quant_method.h"

namespace inferd {

// Throws Error for an unsupported --quantization value.
std::unique_ptr<QuantizationConfig> make_quantization_config(const ModelConfig& config,
                                                             const LoadOptions& opts,
                                                             const DeviceRuntime& runtime);

// The methods' own configs (one file each).
std::unique_ptr<QuantizationConfig> make_unquantized_config();
// --quantization fp8: bf16/f16/f32 weights rounded to FP8 per output channel at load.
std::unique_ptr<QuantizationConfig> make_fp8_online_config(const DeviceRuntime& runtime);
// FP8 checkpoints. `online_fallback`: --quantization fp8 for the linears the checkpoint stores in
// higher precision. compressed-tensors: per tensor / channel scales, dynamic or static input
// scales (compressed_tensors.cc); transformers' "fp8": 128x128 block scales (fp8.cc).
std::unique_ptr<QuantizationConfig> make_compressed_tensors_config(const ModelConfig& config,
                                                                   bool online_fallback);
std::unique_ptr<QuantizationConfig> make_fp8_block_config(const ModelConfig& config,
                                                          bool online_fallback);

}  // namespace inferd
