// The bytes of weights a model holds, and the bytes one decode token must read (its bandwidth
// floor): every weight of a dense model, but of an MoE layer only the router and the
// num_experts_per_tok experts a token is routed to (issue 27: "the active-weights bandwidth
// floor"). From the config's shapes and the bits each kind of weight takes as it runs (a
// quantized format's group scales and zero points included); norms and biases are left out
// (they are < 0.1 %).
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"

namespace inferd {

struct WeightFootprint {
  int64_t total_bytes = 0;
  int64_t active_bytes = 0;  // read by one decode token (one embedding row, not the table)
};

// Bits one weight takes, its share of the group scales and zero points included.
struct WeightBits {
  double linear = 16;   // attention, dense MLPs and MoE routers
  double experts = 16;  // MoE expert weights
  double embed = 16;    // the embedding table and lm_head
};

// The bits of a checkpoint quantized as `q` says, run with --quantization `flag` (its weights
// as they sit on the device; unquantized ones in 16-bit floats):
//  - none: 16; --quantization fp8: 8 for linears and experts (a scale per row is < 0.1 %).
//  - FP8 checkpoints (compressed-tensors, block scales): linears 8; experts 16 (dequantized at
//    load) unless --quantization fp8.
//  - MXFP4 (gpt-oss): experts 4 + 8 / 32 = 4.25 (an e8m0 scale per 32), the rest 16 (or 8).
//  - AWQ / GPTQ / compressed-tensors int: linears bits + (16 + zero bits) / group_size (an fp16
//    scale a group, a `bits`-wide zero point unless symmetric); group_size -1 (one group a row)
//    counts the bits alone.
//  - GGUF: 16 (each tensor has its own block type; not modelled here).
WeightBits weight_bits(const QuantConfig& q, const std::string& flag);

WeightFootprint weight_footprint(const ModelConfig& c, const WeightBits& bits);

}  // namespace inferd
