// A model's QuantizationConfig from its checkpoint's quantization_config and --quantization: the
// one place that says which method each quantization scheme is (quant_method.h).
#pragma once

#include <memory>

#include "model/config.h"
#include "model/loader/model_loader.h"
#include "model/quant/quant_method.h"

namespace inferd {

// Throws Error for an unsupported --quantization value. An FP8 checkpoint's scheme gives its own
// method to the linears it stores in float8 and the unquantized (or, with --quantization fp8, the
// online) method to the rest.
std::unique_ptr<QuantizationConfig> make_quantization_config(const ModelConfig& config,
                                                             const LoadOptions& opts);

// The methods of the FP8 schemes (fp8.cc, compressed_tensors.cc).
// --quantization fp8: bf16/f16/f32 weights rounded to FP8 per output channel at load.
const LinearMethod& fp8_online_method();
// transformers' "fp8" checkpoints (128x128 block scales).
std::unique_ptr<LinearMethod> make_fp8_block_method(const ModelConfig& config);
// compressed-tensors FP8 (per tensor / channel scales, dynamic or static input scales).
std::unique_ptr<LinearMethod> make_compressed_tensors_method();
// A GGUF file's linears (gguf.cc): block types computed where they are when the backend has
// kernels for them (DeviceRuntime::supports_ggml), dequantized into a dense linear otherwise.
std::unique_ptr<QuantizationConfig> make_gguf_quantization_config();

}  // namespace inferd
