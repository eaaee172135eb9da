// How a mixture-of-experts layer's expert weights are created from a checkpoint (issue 27): every
// expert's gate_up or down projection as one ExpertLinear (backend_types.h) [E, out, in], with its
// biases, placed for the backend. Dense experts (experts.cc) come as the checkpoint stores them:
// gpt-oss's fused 3-D tensors `<name>` [E, in, out] (transposed at load) or one 2-D tensor per
// expert; MXFP4 experts (mxfp4.cc) as `<name>_blocks` / `<name>_scales`, kept packed where the
// backend computes them (DeviceRuntime::supports_mxfp4) and dequantized at load elsewhere.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"

namespace inferd {

class ModelLoader;

struct ExpertSpec {
  std::string name;  // "model.layers.<i>.mlp.experts.gate_up_proj"
  int64_t num_experts = 0, out_features = 0, in_features = 0;
  bool bias = false;  // `<name>_bias` [E, out]
};

// gpt-oss's experts: fused 3-D tensors, dense ([E, in, out]) or MXFP4 (when the checkpoint's
// quantization_config says mxfp4, or `<name>_blocks` is present).
ExpertLinear load_fused_experts(const ExpertSpec& spec, ModelLoader& loader);

// ---- MXFP4 (mxfp4.cc) ----------------------------------------------------------------------
// The OCP MX e2m1 value of a 4-bit code (sign, 2 exponent bits, 1 mantissa bit).
float mxfp4_value(uint8_t code);
// rows x in values (bf16, exact) from packed blocks [rows, in / 2] and e8m0 scales
// [rows, in / 32] (value = e2m1 * 2^(scale - 127); code 2i in byte i's low nibble).
void dequantize_mxfp4(const uint8_t* blocks, const uint8_t* scales, int64_t rows, int64_t in,
                      uint16_t* out_bf16);
// The MXFP4 experts of `spec` (checkpoint or dummy), placed for the backend.
ExpertLinear load_mxfp4_experts(const ExpertSpec& spec, ModelLoader& loader);
// `<name>_bias` [E, out] (any float dtype; dummy: seeded), or undefined.
Tensor load_expert_bias(const ExpertSpec& spec, ModelLoader& loader);

}  // namespace inferd
