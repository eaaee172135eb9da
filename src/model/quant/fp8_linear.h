// What the FP8 quantization methods share (fp8.cc, compressed_tensors.cc): the weights of a linear
// that runs in FP8 where the backend can (or dense where it cannot), the test of whether a
// checkpoint stores a linear in float8, and the dense weight of an FP8 checkpoint's linear
// (dequantized on the host).
#pragma once

#include <string>

#include "model/loader/model_loader.h"
#include "model/quant/quant_method.h"

namespace inferd {

class SafetensorsIndex;

struct Fp8LinearWeights final : LinearWeights {
  bool is_fp8 = false;
  Linear dense;  // when !is_fp8
  Fp8Linear fp8;
};

// Applies Fp8LinearWeights: the FP8 GEMM or the dense one.
void apply_fp8_linear(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out);

// True when every part of `spec` is stored as float8 e4m3 in `checkpoint` (false when null).
bool stored_as_fp8(const LinearSpec& spec, const SafetensorsIndex* checkpoint);

// The dense weight of an FP8 checkpoint's linear: each part read with its scales
// (read_fp8_weight) and dequantized to fp32 on the host.
Linear dequantized_fp8_linear(const LinearSpec& spec, ModelLoader& loader);

// Warns once per process for a linear that stays in bf16 because its shape has no FP8 GEMM.
void warn_fp8_shape_fallback(int64_t in_features, int64_t out_features);

}  // namespace inferd
