// MXFP4 mixture-of-experts weights (mxfp4.cc; OCP Microscaling Formats v1.0, MXFP4): the e2m1
// code table, dequantization of packed rows, and the MoE experts of a gpt-oss checkpoint read in
// its `*_blocks` / `*_scales` layout (QuantizationConfig::create_moe_experts hands MXFP4
// checkpoints here).
#pragma once

#include <cstdint>

#include "model/quant/quant_method.h"

namespace inferd {

// The OCP MX e2m1 value of a 4-bit code (sign, 2 exponent bits, 1 mantissa bit).
float mxfp4_value(uint8_t code);
// rows x in values (bf16, exact) from packed blocks [rows, in / 2] and e8m0 scales
// [rows, in / 32] (value = e2m1 * 2^(scale - 127); code 2i in byte i's low nibble).
void dequantize_mxfp4(const uint8_t* blocks, const uint8_t* scales, int64_t rows, int64_t in,
                      uint16_t* out_bf16);
// Whether `spec`'s experts are MXFP4: the checkpoint's quantization_config says mxfp4, or it
// holds `<prefix>experts.gate_up_proj_blocks`.
bool is_mxfp4_experts(const MoeExpertsSpec& spec, ModelLoader& loader);
// One layer's MXFP4 experts (checkpoint or dummy; stored output-major, gate/up rows as the spec
// says), kept packed (MoeExperts::Format::kMxfp4) where the backend computes MXFP4
// (DeviceRuntime::supports_mxfp4) and dequantized to exact bf16 at load elsewhere.
MoeExperts create_mxfp4_moe_experts(const MoeExpertsSpec& spec, ModelLoader& loader);

}  // namespace inferd
