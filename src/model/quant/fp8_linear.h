// What the FP8 quantization methods share (fp8.cc, compressed_tensors.cc): the weights of a linear
// that runs in FP8 where the backend can (or dense where it cannot), the online method
// (--quantization fp8) they fall back to for linears a checkpoint stores in higher precision, and
// the dense weight of an FP8 checkpoint's linear (dequantized on the host).
#pragma once

#include <atomic>
#include <string>

#include "model/loader/model_loader.h"
#include "model/quant/quant_method.h"

namespace inferd {

struct Fp8LinearWeights final : LinearWeights {
  bool is_fp8 = false;
  Linear dense;  // when !is_fp8
  Fp8Linear fp8;
};

// Applies Fp8LinearWeights: the FP8 GEMM or the dense one.
void apply_fp8_linear(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out);

// True when every part of `spec` is stored as float8 e4m3 in the checkpoint.
bool stored_as_fp8(const LinearSpec& spec, ModelLoader& loader);

// The dense weight of an FP8 checkpoint's linear: each part read with its scales
// (read_fp8_weight) and dequantized to fp32 on the host.
Linear dequantized_fp8_linear(const LinearSpec& spec, ModelLoader& loader);

// Warns once per process for a linear that stays in bf16 because its shape has no FP8 GEMM.
void warn_fp8_shape_fallback(int64_t in_features, int64_t out_features);

// --quantization fp8: weights rounded to FP8 per output channel at load (on a backend computing
// FP8: on the device, after loading; elsewhere quantized and dequantized on the host, so the
// backend computes with exactly the values an FP8 weight holds).
const LinearMethod& fp8_online_method();
// Weights as stored, held as Fp8LinearWeights (an FP8 checkpoint's linears stored in higher
// precision, without --quantization fp8).
const LinearMethod& fp8_dense_method();

}  // namespace inferd
