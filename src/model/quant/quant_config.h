// How a checkpoint's linear weights are quantized, as config.json's quantization_config says
// (parse_quantization reads it; the quantization methods in this folder act on it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace inferd {

// How a checkpoint's linear weights are quantized (config.json's quantization_config).
enum class QuantMethod : uint8_t {
  kNone,
  // compressed-tensors float8 (RedHatAI/...-FP8, -FP8-dynamic): weight_scale per tensor or per
  // output channel, activations per token (dynamic) or per tensor (static input_scale).
  kCompressedTensorsFp8,
  // transformers' "fp8" (Qwen3-FP8, DeepSeek): weight_scale_inv per 128x128 block, activations
  // quantized per token and 128-wide group at run time.
  kFp8Block,
  // A GGUF file (issue 35): each tensor in its own ggml block type (model/quant/gguf.cc).
  kGguf,
  // OCP MXFP4 experts (gpt-oss): `<experts>.<proj>_blocks` / `_scales`, the rest unquantized
  // (model/quant/mxfp4.cc).
  kMxfp4,
  // Integer weights with group scales (issue 28): AutoAWQ's GEMM layout (awq.cc), AutoGPTQ /
  // GPTQModel's (gptq.cc), compressed-tensors pack-quantized W4A16 (compressed_tensors_int.cc).
  kAwq,
  kGptq,
  kCompressedTensorsInt,
};
struct QuantConfig {
  QuantMethod method = QuantMethod::kNone;
  bool weight_per_tensor = false;   // compressed-tensors: strategy "tensor" (else "channel")
  bool static_activations = false;  // compressed-tensors: input_scale given (strategy "tensor")
  int64_t block_n = 128, block_k = 128;  // kFp8Block: weight_block_size
  std::vector<std::string> ignore;       // modules left unquantized ("lm_head")
  // kAwq / kGptq / kCompressedTensorsInt: bits a weight (4; GPTQ also 8), inputs per scale group
  // (-1: one group over all inputs, compressed-tensors' "channel" strategy and GPTQ's -1),
  // symmetric (no zero points stored: GPTQ's sym, compressed-tensors' symmetric), act-order
  // (GPTQ's desc_act, compressed-tensors' actorder "group": a g_idx tensor per weight), and
  // GPTQ's v1 zero points (stored minus one: checkpoint_format "gptq", the default).
  int bits = 0;
  int64_t group_size = 0;
  bool symmetric = false;
  bool act_order = false;
  bool gptq_v1_zeros = true;
};
const char* quant_method_name(QuantMethod m);
// What a model runs with, for logs: the checkpoint's method with its bits and group size ("awq
// (4-bit, group 128)"), or `flag` (--quantization fp8) on an unquantized one, or "none".
std::string describe_quantization(const QuantConfig& q, const std::string& flag);

// Reads config.json's quantization_config (`source` names the file in errors). Throws Error for
// a method or option inferd does not implement, naming it.
QuantConfig parse_quantization(const nlohmann::json& q, const std::string& source);

}  // namespace inferd
