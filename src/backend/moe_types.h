// The values the mixture-of-experts ops take (issue 27): how a router's logits pick each token's
// experts (MoeRouting), the expert weights of one layer as a backend places them (MoeExperts,
// tagged by format: dense, FP8 with per-expert channel scales, MXFP4 blocks), what the loader
// hands the backend to place (MoeExpertTensors), and the scratch the expert op may use.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace inferd {

// How a token's experts and their weights come from the router logits [T, E].
//  softmax_before_topk: p = softmax(logits) over all E, then the k largest p (Qwen3-MoE, Mixtral:
//    transformers' routers), renormalised to sum 1 when `renormalize` (norm_topk_prob; Mixtral
//    always: softmax over all then renormalise over the top k equals softmax over the top-k
//    logits).
//  else: the k largest logits, then softmax over those k (gpt-oss); `renormalize` is moot.
// Ties pick the lower expert index (torch.topk on CPU does the same for distinct values).
struct MoeRouting {
  int32_t num_experts = 0;
  int32_t top_k = 0;
  bool softmax_before_topk = true;
  bool renormalize = true;
};

// The expert MLPs of one layer: out = down(act(gate(x)) * up(x)) per expert.
struct MoeExperts {
  enum class Format : uint8_t {
    kDense,  // bf16 / f16 / f32 weights
    kFp8,    // float8 e4m3 weights, fp32 scale per expert and output channel
    kMxfp4,  // e2m1 values in blocks of 32 with an e8m0 scale each (gpt-oss; quant/mxfp4.cc)
  };
  // The gated activation between the two GEMMs. kSwigluClamp: gpt-oss's clamped SwiGLU with
  // alpha / limit.
  enum class Act : uint8_t { kSilu, kSwigluClamp };
  Format format = Format::kDense;
  Act act = Act::kSilu;
  float act_alpha = 1.702f, act_limit = 7.0f;  // kSwigluClamp only
  // gate_up rows alternate gate, up (gpt-oss's checkpoint) instead of all gate rows then all up.
  bool gate_up_interleaved = false;
  int64_t num_experts = 0, hidden = 0, intermediate = 0;  // E, H, F

  // Host backends (the CPU): each expert's gate/up weight [2F, H] as row blocks (gate rows then up
  // rows: two parts of [F, H], or one part of [2F, H]) and its down weight [H, F], views of the
  // checkpoint where it is mapped (no copy), in f32 / bf16 / f16.
  std::vector<std::vector<Tensor>> gate_up;
  std::vector<Tensor> down;

  // Device backends: every expert stacked in one allocation each, w13 [E, 2F, H] and w2 [E, H, F]
  // (kDense: bf16; kFp8: float8 e4m3 with w13_scale [E, 2F] and w2_scale [E, H] fp32; kMxfp4:
  // undefined, the experts are in the *_blocks / *_scales below).
  Tensor w13, w2;
  Tensor w13_scale, w2_scale;
  // Optional fp32 biases [E, 2F] and [E, H] (gpt-oss), on the backend's device.
  Tensor w13_bias, w2_bias;
  // kMxfp4 (backends where DeviceRuntime::supports_mxfp4()): the checkpoint's packed bytes, u8
  // w13_blocks [E, 2F, H / 2] (byte i of a row holds input 2i in its low nibble, 2i + 1 in the
  // high one), w13_scales [E, 2F, H / 32] (value = e2m1 * 2^(scale - 127) for the 32 inputs of a
  // group), w2_blocks [E, H, F / 2], w2_scales [E, H, F / 32]; H and F multiples of 32.
  Tensor w13_blocks, w13_scales, w2_blocks, w2_scales;
};

// The tensors of one layer's experts as the loader found them, for DeviceRuntime::
// make_moe_experts: either stacked (`w13` [E, 2F, H] and `w2` [E, H, F], host or device tensors:
// transformers 5's fused `experts.gate_up_proj` / `experts.down_proj`, or dummy weights drawn on
// the device) or per expert (`gate_up[e]` one or two row blocks, `down[e]`: the published
// checkpoints' `experts.<e>.gate_proj` / `up_proj` / `down_proj`, Mixtral's w1 / w3 / w2).
// MXFP4 experts (quant/mxfp4.cc, backends where supports_mxfp4()) come as the four u8 host
// tensors of MoeExperts' kMxfp4 layout instead.
struct MoeExpertTensors {
  Tensor w13, w2;
  std::vector<std::vector<Tensor>> gate_up;
  std::vector<Tensor> down;
  Tensor w13_blocks, w13_scales, w2_blocks, w2_scales;  // MXFP4, u8
  Tensor w13_bias, w2_bias;                             // optional, any float dtype
};

// Bytes of scratch per token row that KernelOps::moe_experts may use on a device backend (the
// caller passes at least T times this): per (token, choice) slot the activation row and the down
// output row in bf16 and two permutation entries, plus the per-expert offsets and the alignment
// of the regions (amortised over one row). The CPU keeps its own buffers.
inline int64_t moe_scratch_bytes_per_row(int64_t num_experts, int64_t top_k, int64_t hidden,
                                         int64_t intermediate) {
  return top_k * (2 * (intermediate + hidden) + 8) + 8 * (num_experts + 1) + 8 * 256;
}

}  // namespace inferd
