// FP8 (float8 e4m3fn) linear weights: reading the two checkpoint layouts inferd supports
// (compressed-tensors per tensor / per channel, transformers' 128x128 blocks), quantizing bf16
// weights at load (--quantization fp8: per output channel), and dequantizing for backends that
// compute in higher precision (the CPU).
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/loader/safetensors.h"
#include "model/parallel.h"

namespace inferd {

class ModelLoader;

// A scale tensor of any float dtype (f32, bf16, f16) as fp32 values; throws Error otherwise.
std::vector<float> float_values(const Tensor& t);

// One [out, in] weight in FP8 with its scales: w[n, k] ~= f8(q[n, k]) * scale(n, k), where
// scale(n, k) is channel_scale[n] (per channel; a per-tensor scale is repeated) or
// block_scale[n / block_n][k / block_k] (blocks).
struct Fp8Weight {
  Tensor q;                          // kF8E4M3 [out, in] (a view into the checkpoint, or owned)
  std::vector<float> channel_scale;  // [out], or empty for blocks
  std::vector<float> block_scale;    // [ceil(out / block_n) * ceil(in / block_k)], row-major
  int64_t block_n = 0, block_k = 0;
  int64_t out() const { return q.size(0); }
  int64_t in() const { return q.size(1); }
  float scale(int64_t n, int64_t k) const {
    if (!channel_scale.empty()) return channel_scale[size_t(n)];
    const int64_t kb = (in() + block_k - 1) / block_k;
    return block_scale[size_t((n / block_n) * kb + k / block_k)];
  }
};

// The FP8 weight `name` ("...proj.weight") of a checkpoint quantized as `quant` says, with its
// scale tensors ("...weight_scale" or "...weight_scale_inv"). Throws Error naming a missing or
// misshapen tensor.
Fp8Weight read_fp8_weight(const SafetensorsIndex& st, const std::string& name,
                          std::span<const int64_t> shape, const QuantConfig& quant);

// Per-output-channel quantization of a float weight (bf16, f16 or f32): scale = max |w[n, :]| /
// 448, q = round-to-nearest-even(w / scale) saturated to +-448 (vLLM's --quantization fp8).
Fp8Weight quantize_fp8_per_channel(const Tensor& w);

// f8(q) * scale as an fp32 [out, in] host tensor.
Tensor dequantize_fp8(const Fp8Weight& w);

// Weight `name` [shape] through `loader`, rounded to FP8 per output channel and dequantized (what
// --quantization fp8 holds on a backend without FP8), this rank's `shard` of it (tensor
// parallelism): rows are read as a slice, columns cut after rounding whole rows, so every rank
// holds one rank's values. Throws Error under --load-format dummy (no host values to round).
Tensor read_fp8_rounded(ModelLoader& loader, const std::string& name,
                        std::span<const int64_t> shape, const Shard& shard);

}  // namespace inferd
